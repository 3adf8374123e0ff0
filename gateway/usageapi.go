package gateway

import (
	"context"
	"math/big"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// periodUsage is what the caller's key used in one period, from the daily rollups: its cost is
// that of the priced usage (null when none is), the unpriced usage counted apart.
type periodUsage struct {
	From string `json:"from"` // yyyy-MM-dd (UTC), inclusive
	billing.Rollup
}

// subjectQuota is one subject's limits and current consumption.
type subjectQuota struct {
	Subject string       `json:"subject"` // user/<id>, key/<id> or tenant/<id>
	Limits  quota.Limits `json:"limits"`  // 0 = unlimited
	Used    *quota.Usage `json:"used,omitempty"`
	Budgets []budgetView `json:"budgets,omitempty"`
}

type budgetView struct {
	Period       string `json:"period"` // day or month
	LimitUSD     string `json:"limit_usd"`
	SpentUSD     string `json:"spent_usd"` // from the ledger (requests still being written are not in it yet)
	RemainingUSD string `json:"remaining_usd"`
}

// handleUsage answers GET /v1/usage: the caller's own usage today and this month (its key's
// rollups), the limits and current consumption of the subjects its requests count against,
// their budgets, and the prepaid balance that pays for them.
func (g *Gateway) handleUsage(c *gin.Context) {
	x, ok := g.authenticate(c, "usage")
	if !ok {
		return
	}
	var out outcome
	defer x.settle(&out)
	if wantsEvents(c.Request) {
		wake, stop := g.events.subscribe(x.id.Key.ID)
		defer stop()
		out = x.streamEvents("usage", x.usageBody, wake)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	body, err := x.usageBody(ctx)
	if err != nil {
		out = x.failed(err)
		return
	}
	out.status = http.StatusOK
	c.JSON(http.StatusOK, body)
}

// usageBody is the answer of GET /v1/usage for the exchange's key.
func (x *exchange) usageBody(ctx context.Context) (any, error) {
	g := x.g
	k := x.id.Key
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rows, err := g.ledger.BillingRecords(ctx, store.BillingFilter{KeyID: k.ID, TenantID: k.TenantID, From: monthStart, Limit: 100_000})
	if err != nil {
		return nil, errStoreDown
	}
	day := periodUsage{From: today.Format(time.DateOnly)}
	month := periodUsage{From: monthStart.Format(time.DateOnly)}
	for _, r := range rows {
		month.Add(r)
		if !r.Day.Before(today) {
			day.Add(r)
		}
	}

	var subjects []subjectQuota
	for _, s := range x.subjects("", "") {
		if s.Kind == quota.KindSession {
			continue
		}
		sq := subjectQuota{Subject: string(s.Kind) + "/" + s.ID, Limits: s.Limits}
		if r, ok := g.limiter.(quota.UsageReader); ok && *g.quota.Enabled {
			if u, err := r.Usage(ctx, s); err == nil {
				sq.Used = &u
			}
		}
		if p, ok := g.policies.Lookup(s.Kind, s.ID, ""); ok {
			sq.Budgets = g.budgetViews(ctx, p)
		}
		subjects = append(subjects, sq)
	}
	body := gin.H{"object": "usage", "key_id": k.ID, "user_id": k.UserID, "tenant_id": k.TenantID,
		"today": day, "month": month, "quota": subjects}
	// The balance is read from the ledger, not the admission snapshot: charges written in the
	// last seconds show. (Requests still in the usage queue are not charged yet.)
	if acct, ok, err := billing.PayerAccount(ctx, g.ledger, k.UserID, k.TenantID); err == nil && ok {
		body["credit"] = gin.H{"account": acct.SubjectType, "balance_usd": billing.FormatPico(acct.BalancePicoUSD)}
	}
	return body, nil
}

// budgetViews reports a policy's budgets against the ledger's spend.
func (g *Gateway) budgetViews(ctx context.Context, p store.QuotaPolicy) []budgetView {
	var out []budgetView
	month, day, err := g.ledger.Spend(ctx, store.SpendFilter{SubjectType: p.SubjectType, SubjectID: p.SubjectID, Day: time.Now()})
	if err != nil {
		return nil
	}
	for _, b := range []struct {
		period string
		limit  *int64
		spent  *big.Int
	}{{"day", p.BudgetDayMicroUSD, day}, {"month", p.BudgetMonthMicroUSD, month}} {
		if b.limit == nil || *b.limit <= 0 {
			continue
		}
		limit := new(big.Int).Mul(big.NewInt(*b.limit), big.NewInt(1_000_000)) // micro → pico
		rem := new(big.Int).Sub(limit, b.spent)
		if rem.Sign() < 0 {
			rem.SetInt64(0)
		}
		out = append(out, budgetView{Period: b.period, LimitUSD: billing.FormatPico(limit),
			SpentUSD: billing.FormatPico(b.spent), RemainingUSD: billing.FormatPico(rem)})
	}
	return out
}
