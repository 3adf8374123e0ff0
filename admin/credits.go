package admin

import (
	"github.com/gin-gonic/gin"

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
	if _, _, ok := creditSubject(c); !ok {
		return
	}
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	a, ok := s.pathAccount(c)
	if !ok {
		return
	}
	entries, err := s.d.Store.CreditEntries(c.Request.Context(), a.ID, limit+1, offset)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, entries, limit, offset, creditEntryView)
}
