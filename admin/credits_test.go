package admin_test

import (
	"testing"
)

// TestCreditEntriesPaged: an account's whole ledger is readable page by page, newest first, with
// the paging envelope of the other admin lists.
func TestCreditEntriesPaged(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "payer"})
		for _, amount := range []string{"1", "2", "3"} {
			c.Must(200, "POST", "/admin/credits/user/payer/topup", map[string]any{"amount_usd": amount, "note": "n" + amount})
		}
		c.Must(200, "POST", "/admin/credits/user/payer/adjust", map[string]any{"amount_usd": "-0.5"})

		first := c.Must(200, "GET", "/admin/credits/user/payer/entries?limit=3", nil)
		if got := first.JSON("data.#.amount_usd").String(); got != `["-0.5","3","2"]` {
			t.Errorf("first page amounts = %s, want newest first: %s", got, first.Body)
		}
		if !first.JSON("has_more").Bool() || first.JSON("next_offset").Int() != 3 || first.JSON("limit").Int() != 3 ||
			first.JSON("object").String() != "list" {
			t.Errorf("first page envelope: %s", first.Body)
		}
		last := c.Must(200, "GET", "/admin/credits/user/payer/entries?limit=3&offset=3", nil)
		if got := last.JSON("data.#.note").String(); got != `["n1"]` || last.JSON("has_more").Bool() ||
			last.JSON("next_offset").Type.String() != "Null" || last.JSON("data.0.kind").String() != "grant" {
			t.Errorf("last page: %s", last.Body)
		}

		c.Refused(404, "subjectId", "GET", "/admin/credits/user/nobody/entries", nil)
		c.Refused(400, "subjectType", "GET", "/admin/credits/key/payer/entries", nil)
		c.Refused(400, "limit", "GET", "/admin/credits/user/payer/entries?limit=0", nil)
		c.Refused(400, "offset", "GET", "/admin/credits/user/payer/entries?offset=-1", nil)
	})
}
