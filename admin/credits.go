package admin

import (
	"errors"
	"net/http"

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

// creditEntries is GET /admin/credits/{type}/{id}/entries: an account's whole ledger, newest
// first, a page at a time (the account's own answer carries only its latest entries).
func (s *Server) creditEntries(c *gin.Context) {
	typ, id, ok := creditSubject(c)
	if !ok || !s.subjectInScope(c, typ, id, "subjectId") {
		return
	}
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	a, err := s.d.Store.CreditAccountOf(ctx, string(typ), id)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, api.TypeNotFound, "account_not_found", "subjectId", "No credit account for that subject.")
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	entries, err := s.d.Store.CreditEntries(ctx, a.ID, limit+1, offset)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, entries, limit, offset, creditEntryView)
}
