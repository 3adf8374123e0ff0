package admin

import (
	"context"
	"math/big"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/store"
)

// creditEntryView is one ledger entry as the admin API shows it (amount in decimal USD).
func creditEntryView(e store.CreditEntry) gin.H {
	return gin.H{"id": e.ID, "kind": e.Kind, "amount_usd": billing.FormatPico(e.AmountPicoUSD),
		"request_id": e.RequestID, "note": e.Note, "created_at": e.CreatedAt}
}

// creditPeriods are the views of a ledger, by how far back they reach (0: all of it), in the
// order an account's answer lists them.
var creditPeriods = []struct {
	name string
	span time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}, {"all", 0}}

// periodParam reads the period query parameter (default all) and the time its view starts
// (zero for all); otherwise it has answered 400 naming the parameter.
func periodParam(c *gin.Context, now time.Time) (string, time.Time, bool) {
	name := c.DefaultQuery("period", "all")
	for _, p := range creditPeriods {
		if p.name == name {
			if p.span == 0 {
				return name, time.Time{}, true
			}
			return name, now.Add(-p.span), true
		}
	}
	fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "period", "period: want 24h, 7d, 30d or all.")
	return "", time.Time{}, false
}

// creditTotals sums an account's ledger since a time (zero: all of it): the entries and the net
// amount, and the same by kind (grant, charge, refund, adjust).
func (s *Server) creditTotals(ctx context.Context, accountID string, since time.Time) (gin.H, error) {
	ts, err := s.d.Store.CreditTotals(ctx, accountID, since)
	if err != nil {
		return nil, err
	}
	var n int64
	net := new(big.Int)
	byKind := gin.H{}
	for _, t := range ts {
		n += t.Entries
		net.Add(net, t.AmountPicoUSD)
		byKind[t.Kind] = gin.H{"entries": t.Entries, "amount_usd": billing.FormatPico(t.AmountPicoUSD)}
	}
	return gin.H{"entries": n, "net_usd": billing.FormatPico(net), "by_kind": byKind}, nil
}

// since is a view's start as the API shows it: null for all.
func sinceView(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// creditEntries is GET /admin/credits/{type}/{id}/entries: an account's ledger in one view
// (period: 24h, 7d, 30d or all, the default), newest first, a page at a time, with the view's
// totals.
func (s *Server) creditEntries(c *gin.Context) {
	if _, _, ok := creditSubject(c); !ok {
		return
	}
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	period, since, ok := periodParam(c, time.Now())
	if !ok {
		return
	}
	a, ok := s.pathAccount(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	entries, err := s.d.Store.CreditHistory(ctx, a.ID, since, limit+1, offset)
	if err != nil {
		s.internal(c, err)
		return
	}
	totals, err := s.creditTotals(ctx, a.ID, since)
	if err != nil {
		s.internal(c, err)
		return
	}
	body := listBody(entries, limit, offset, creditEntryView)
	body["period"], body["since"], body["totals"] = period, sinceView(since), totals
	c.JSON(http.StatusOK, body)
}

// accountPage is the page of ledger entries an account's answer carries.
type accountPage struct {
	limit, offset int
	period        string
	since         time.Time
}

// writeAccount answers an account with a page of its ledger (in the page's view) and the totals
// of every view.
func (s *Server) writeAccount(c *gin.Context, a store.CreditAccount, p accountPage) {
	ctx := c.Request.Context()
	entries, err := s.d.Store.CreditHistory(ctx, a.ID, p.since, p.limit+1, p.offset)
	if err != nil {
		s.internal(c, err)
		return
	}
	more := len(entries) > p.limit
	if more {
		entries = entries[:p.limit]
	}
	now := time.Now()
	periods := gin.H{}
	for _, v := range creditPeriods {
		since := time.Time{}
		if v.span > 0 {
			since = now.Add(-v.span)
		}
		if periods[v.name], err = s.creditTotals(ctx, a.ID, since); err != nil {
			s.internal(c, err)
			return
		}
	}
	body := accountView(a, entries)
	var next any
	if more {
		next = p.offset + p.limit
	}
	body["limit"], body["offset"], body["has_more"], body["next_offset"] = p.limit, p.offset, more, next
	body["period"], body["periods"] = p.period, periods
	c.JSON(http.StatusOK, body)
}
