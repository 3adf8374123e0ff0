package gateway

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/headers"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/quota"
)

// subjects lists what a request counts against, each with its limits and their origin
// (quota.Options.SubjectsOf: the admin API explains a key's limits with the same function).
func (x *exchange) subjects(model string, payer quota.Kind) []quota.Subject {
	k := x.id.Key
	return x.g.quota.SubjectsOf(x.g.policies, quota.Holder{KeyID: k.ID, UserID: k.UserID, TenantID: k.TenantID, Tier: x.id.Tier},
		model, x.rec.SessionID, payer)
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

// weigh is n tokens at a model's token multiplier k (providers.Router.TokenMultiplier), rounded
// up: what they count against token quotas.
func weigh(n int64, k float64) int64 {
	if k == 1 || k == 0 || n <= 0 {
		return n
	}
	return int64(math.Ceil(float64(n) * k))
}

// reservation is the token estimate held while the request runs: the prompt (a byte count / 4
// upper estimate: JSON syntax and keys count too) plus the most the answer may use.
func (r request) reservation(defaultMax int64) int64 {
	if r.lookup || r.counting { // nothing is generated: the rate and concurrency limits alone apply
		return 0
	}
	prompt := int64(len(r.body)/4) + 1
	if r.maxTokens > 0 {
		return prompt + r.maxTokens
	}
	if r.embeddings || r.media {
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
	// Token quotas count the model's tokens at its weight; money counts them as they are.
	x.tokenWeight = x.g.router.Load().TokenMultiplier(req.model)
	reserve = weigh(reserve, x.tokenWeight)
	subjects := x.subjects(req.model, payer.Kind)
	x.addMoney(subjects, payer)
	k := x.id.Key
	if s, ok := x.g.quota.EndpointSubject(quota.Holder{KeyID: k.ID, UserID: k.UserID, TenantID: k.TenantID, Tier: x.id.Tier}, string(x.ep)); ok {
		subjects = append(subjects, s)
	}
	if x.replaying() {
		// A stored answer spends no tokens and no upstream money: only the request rates and
		// the concurrency slot apply to it (docs/configuration.md, response_cache).
		reserve, cost = 0, 0
		for i := range subjects {
			subjects[i].Limits.TPM, subjects[i].Limits.TokensPerDay, subjects[i].Money = 0, 0, nil
		}
	}
	res, err := x.g.limiter.Admit(x.ctx, quota.Request{ID: x.rec.RequestID, Subjects: subjects, Tokens: reserve, Cost: cost})
	if err != nil {
		// The limiters decide failures themselves (Resilient's fallback); an error here is a bug
		// or a canceled request, and must not block the request path.
		x.g.log.Warn("quota check failed; admitting", "request_id", x.rec.RequestID, "err", err)
		return nil, nil
	}
	h := x.c.Writer.Header()
	setRateLimitHeaders(h, res)
	if dialectOf(x.c) == dialectAnthropic {
		setAnthropicRateLimits(h, res, time.Now())
	}
	if !res.Allowed {
		switch res.Dimension {
		case quota.DimBudgetDay, quota.DimBudgetMonth, quota.DimCredit:
			return nil, moneyRefusal(res)
		}
		x.warnUnchosen(res, subjects)
		return nil, refusal(res, reserve)
	}
	x.g.renewer.add(res.Lease)
	return res.Lease, nil
}

// warnUnchosen logs, at most once a minute per key, a refusal by a limit of the default tier
// that nobody chose for the key (a key without a user, and no limits or policy of its own): the
// usual cause is a service key made without limits, and its owner sees only 429s.
func (x *exchange) warnUnchosen(res quota.Result, subjects []quota.Subject) {
	for _, s := range subjects {
		if !s.Origin.Unchosen(res.Dimension) || s.Key() != res.Subject {
			continue
		}
		if !x.g.unchosenWarned.due(x.id.Key.ID, time.Now()) {
			return
		}
		limit := map[string]int64{quota.DimRPM: s.Limits.RPM, quota.DimTPM: s.Limits.TPM,
			quota.DimTokensPerDay: s.Limits.TokensPerDay, quota.DimConcurrent: s.Limits.Concurrent}[res.Dimension]
		x.g.log.Warn("request refused by a limit of the default tier, which the key never chose: give the key limits of its own "+
			"(admin API PATCH /admin/keys/{id} limits, or llmgate keys create --rpm/--concurrent), a key quota policy, or a user with a tier",
			"key_id", x.id.Key.ID, "tenant_id", x.id.Key.TenantID, "dimension", res.Dimension, "limit", limit,
			"tier", s.Origin.Tier, "why", s.Origin.Default, "request_id", x.rec.RequestID)
		return
	}
}

// everyMinute remembers when it last said yes for each key, to keep a log line to one a
// minute per key whatever the request rate.
type everyMinute struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether a minute has passed since it last said yes for key (or it never did).
func (e *everyMinute) due(key string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.last[key]; ok && now.Sub(t) < time.Minute {
		return false
	}
	if e.last == nil {
		e.last = map[string]time.Time{}
	}
	if len(e.last) >= 10_000 { // forget the keys that are quiet again: the map stays bounded
		for k, t := range e.last {
			if now.Sub(t) >= time.Minute {
				delete(e.last, k)
			}
		}
	}
	e.last[key] = now
	return true
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
	used := quota.Spent{Tokens: weigh(x.rec.PromptTokens+x.rec.CompletionTokens, x.tokenWeight)}
	if x.replaying() { // a stored answer's tokens were spent by the request that made it
		used.Tokens = 0
	}
	if c := x.rec.CostPicoUSD; c != nil {
		used.Cost = billing.CostNano(*c)
		if x.rec.Charge {
			used.Charge = used.Cost
		}
	}
	// Not the request's context: a request that ended still settles. The limiter bounds its own
	// waits (see Deps.Limiter).
	if err := x.g.limiter.Settle(context.Background(), x.lease, used); err != nil {
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

// rateLimitHeaders are the OpenAI-style headers of a decision's request and token windows, in
// setRateLimitHeaders' order; each name is in canonical form.
var rateLimitHeaders = [6]string{
	"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests",
	"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens",
}

// setRateLimitHeaders sets the headers of the decision's limited windows: every value is
// formatted into one buffer, made one string, and set as slices of it (this runs on every request
// with a limit).
func setRateLimitHeaders(h http.Header, res quota.Result) {
	var buf [128]byte
	b := buf[:0]
	var ends [6]int // where each header's value ends in b; 0 for a window without a limit
	for i, w := range [2]quota.Window{res.Requests, res.Tokens} {
		if w.Limit <= 0 {
			continue
		}
		b = strconv.AppendInt(b, w.Limit, 10)
		ends[3*i] = len(b)
		b = strconv.AppendInt(b, max(w.Remaining, 0), 10)
		ends[3*i+1] = len(b)
		b = append(b, w.Reset.Round(time.Millisecond).String()...)
		ends[3*i+2] = len(b)
	}
	if len(b) == 0 {
		return
	}
	all := string(b)
	var kv [12]string
	n, start := 0, 0
	for i, end := range ends {
		if end > 0 {
			kv[n], kv[n+1], n, start = rateLimitHeaders[i], all[start:end], n+2, end
		}
	}
	headers.Set(h, kv[:n]...)
}
