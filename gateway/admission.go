package gateway

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/quota"
)

// subjects lists what a request counts against, each with its limits:
//   - its user, with the user's tier limits overridden by the user's policy (a key without a user
//     is its own subject instead, with the default tier's limits);
//   - its key, when the key has a policy of its own;
//   - its tenant, when the tenant has a policy or is the payer (the subject type whose credit
//     account pays for the request, see billing.Guard.Payer; "" for none);
//   - its session (X-Session-Id), with the configured session limits;
//   - for each of those with a policy for the requested model, that narrower subject too.
func (x *exchange) subjects(model string, payer quota.Kind) []quota.Subject {
	g, k := x.g, x.id.Key
	book := g.policies
	out := make([]quota.Subject, 0, 4)
	add := func(kind quota.Kind, id string, base quota.Limits, always bool) {
		p, ok := book.Lookup(kind, id, "")
		if ok {
			base = quota.ApplyPolicy(base, p)
		}
		if ok || always || payer == kind {
			out = append(out, quota.Subject{Kind: kind, ID: id, Tenant: k.TenantID, Limits: base})
		}
		if mp, ok := book.Lookup(kind, id, model); ok && model != "" {
			out = append(out, quota.Subject{Kind: kind, ID: id, Tenant: k.TenantID, Model: model, Limits: quota.ApplyPolicy(quota.Limits{}, mp)})
		}
	}
	if k.UserID != "" {
		add(quota.KindUser, k.UserID, g.quota.TierLimits(x.id.Tier), true)
		add(quota.KindKey, k.ID, quota.Limits{}, false)
	} else {
		add(quota.KindKey, k.ID, g.quota.TierLimits(""), true)
	}
	add(quota.KindTenant, k.TenantID, quota.Limits{}, false)
	if x.rec.SessionID != "" {
		out = append(out, quota.Subject{Kind: quota.KindSession, ID: x.rec.SessionID, Tenant: k.TenantID, Limits: g.quota.Session})
	}
	return out
}

// addMoney gives each subject whose policy sets a budget its Money, with the ledger's spend, and
// the payer's (model-less) subject the credit account's figures.
func (x *exchange) addMoney(subjects []quota.Subject, payer billing.Payer) {
	for i := range subjects {
		s := &subjects[i]
		if p, ok := x.g.policies.Lookup(s.Kind, s.ID, s.Model); ok {
			s.Money = x.g.money.BudgetMoney(x.ctx, p)
		}
		if payer.Kind != "" && s.Kind == payer.Kind && s.Model == "" {
			s.Money = payer.Money(s.Money)
		}
	}
}

// reservation is the token estimate held while the request runs: the prompt (a byte count / 4
// upper estimate: JSON syntax and keys count too) plus the most the answer may use.
func (r request) reservation(defaultMax int64) int64 {
	prompt := int64(len(r.body)/4) + 1
	if r.maxTokens > 0 {
		return prompt + r.maxTokens
	}
	if r.embeddings {
		return prompt
	}
	return prompt + defaultMax
}

// admit asks the limiter for room (rates, budgets, the payer's credit) and sets OpenAI's
// rate-limit headers (on the answer, whatever it turns out to be). It returns the lease the
// request holds while it runs (nil when quotas are off or the limiter failed open; settle frees
// it), or the 429 that refuses it.
func (x *exchange) admit(req request, cands []*providers.Deployment, payer billing.Payer) (*quota.Lease, error) {
	if !*x.g.quota.Enabled {
		return nil, nil
	}
	reserve := req.reservation(x.g.quota.DefaultMaxTokens)
	upstreams := make([]string, len(cands))
	for i, d := range cands {
		upstreams[i] = d.Model
	}
	cost := x.reserveCost(req, upstreams, reserve)
	subjects := x.subjects(req.model, payer.Kind)
	x.addMoney(subjects, payer)
	res, err := x.g.limiter.Admit(x.ctx, quota.Request{ID: x.rec.RequestID, Subjects: subjects, Tokens: reserve, Cost: cost})
	if err != nil {
		// The limiters decide failures themselves (Resilient's fallback); an error here is a bug
		// or a canceled request, and must not block the request path.
		x.g.log.Warn("quota check failed; admitting", "request_id", x.rec.RequestID, "err", err)
		return nil, nil
	}
	h := x.c.Writer.Header()
	if w := res.Requests; w.Limit > 0 {
		h.Set("X-Ratelimit-Limit-Requests", strconv.FormatInt(w.Limit, 10))
		h.Set("X-Ratelimit-Remaining-Requests", strconv.FormatInt(max(w.Remaining, 0), 10))
		h.Set("X-Ratelimit-Reset-Requests", w.Reset.Round(time.Millisecond).String())
	}
	if w := res.Tokens; w.Limit > 0 {
		h.Set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(w.Limit, 10))
		h.Set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(max(w.Remaining, 0), 10))
		h.Set("X-Ratelimit-Reset-Tokens", w.Reset.Round(time.Millisecond).String())
	}
	if !res.Allowed {
		switch res.Dimension {
		case quota.DimBudgetDay, quota.DimBudgetMonth, quota.DimCredit:
			return nil, moneyRefusal(res)
		}
		return nil, refusal(res, reserve)
	}
	x.g.renewer.add(res.Lease)
	return res.Lease, nil
}

// refusal is the 429 for a refused admission.
func refusal(res quota.Result, reserve int64) *Error {
	var msg string
	switch res.Dimension {
	case quota.DimConcurrent:
		msg = "Too many concurrent requests for " + res.Subject + ". Retry when one of them has finished."
	case quota.DimTPM, quota.DimTokensPerDay:
		msg = "Token limit (" + res.Dimension + ") reached for " + res.Subject + ": this request reserves " +
			strconv.FormatInt(reserve, 10) + " tokens (prompt estimate + max_tokens)."
	default:
		msg = "Rate limit (" + res.Dimension + ") reached for " + res.Subject + "."
	}
	if res.Degraded {
		msg += " The quota store is unreachable and this limit fails closed."
	}
	e := newError(http.StatusTooManyRequests, api.TypeRateLimit, "rate_limit_exceeded", "", msg)
	e.retryAfter = res.RetryAfter
	if e.retryAfter <= 0 {
		e.retryAfter = time.Second
	}
	return e
}

// settleQuota releases the lease and turns the reservation into the tokens used (provider usage,
// or the estimate). It runs after the answer has been flushed to the client, with a context that
// outlives the request.
func (x *exchange) settleQuota() {
	if x.lease == nil {
		return
	}
	x.g.renewer.remove(x.lease)
	// finishUsage has counted or estimated the tokens and costed them.
	used := quota.Spent{Tokens: x.rec.PromptTokens + x.rec.CompletionTokens}
	if c := x.rec.CostPicoUSD; c != nil {
		used.Cost = billing.CostNano(*c)
		if x.rec.Charge {
			used.Charge = used.Cost
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := x.g.limiter.Settle(ctx, x.lease, used); err != nil {
		x.g.log.Warn("quota settle failed", "request_id", x.rec.RequestID, "err", err)
	}
}

// renewer keeps the concurrency leases of long-running requests alive: one goroutine renews, in
// one call, every lease older than a third of the TTL, so a gateway that dies stops renewing and
// its slots free themselves within the TTL.
type renewer struct {
	limiter quota.Limiter
	every   time.Duration

	mu     sync.Mutex
	leases map[*quota.Lease]time.Time // lease → last renewed (or admitted)
}

func newRenewer(l quota.Limiter, ttl time.Duration) *renewer {
	return &renewer{limiter: l, every: ttl / 3, leases: make(map[*quota.Lease]time.Time)}
}

func (r *renewer) add(l *quota.Lease) {
	r.mu.Lock()
	r.leases[l] = time.Now()
	r.mu.Unlock()
}

func (r *renewer) remove(l *quota.Lease) {
	r.mu.Lock()
	delete(r.leases, l)
	r.mu.Unlock()
}

// run renews until ctx ends.
func (r *renewer) run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var due []*quota.Lease
			r.mu.Lock()
			for l, at := range r.leases {
				if now.Sub(at) >= r.every {
					due = append(due, l)
					r.leases[l] = now
				}
			}
			r.mu.Unlock()
			if len(due) > 0 {
				rctx, cancel := context.WithTimeout(ctx, r.every)
				_ = r.limiter.Renew(rctx, due)
				cancel()
			}
		}
	}
}
