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

// TestCreditHistoryPeriods: the account's own answer pages its entries with limit and offset
// (beyond the latest 100) and carries the totals of the 24h / 7d / 30d / all views; the entries
// list narrows to one view with period and sums it.
func TestCreditHistoryPeriods(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "payer"})
		for _, amount := range []string{"1", "2", "3"} {
			c.Must(200, "POST", "/admin/credits/user/payer/topup", map[string]any{"amount_usd": amount})
		}
		c.Must(200, "POST", "/admin/credits/user/payer/adjust", map[string]any{"amount_usd": "-0.5"})

		acct := c.Must(200, "GET", "/admin/credits/user/payer?limit=2&offset=1", nil)
		if got := acct.JSON("entries.#.amount_usd").String(); got != `["3","2"]` {
			t.Errorf("account entries with limit 2 offset 1 = %s: %s", got, acct.Body)
		}
		if !acct.JSON("has_more").Bool() || acct.JSON("next_offset").Int() != 3 {
			t.Errorf("account paging envelope: %s", acct.Body)
		}
		for _, p := range []string{"24h", "7d", "30d", "all"} {
			if got := acct.JSON("periods." + p + ".net_usd").String(); got != "5.5" {
				t.Errorf("periods.%s.net_usd = %q, want 5.5: %s", p, got, acct.Body)
			}
			if got := acct.JSON("periods." + p + ".entries").Int(); got != 4 {
				t.Errorf("periods.%s.entries = %d, want 4", p, got)
			}
		}

		week := c.Must(200, "GET", "/admin/credits/user/payer/entries?period=7d&limit=3", nil)
		if got := week.JSON("data.#.amount_usd").String(); got != `["-0.5","3","2"]` || !week.JSON("has_more").Bool() {
			t.Errorf("7d entries: %s", week.Body)
		}
		if week.JSON("period").String() != "7d" || week.JSON("since").String() == "" ||
			week.JSON("totals.by_kind.grant.amount_usd").String() != "6" || week.JSON("totals.by_kind.grant.entries").Int() != 3 ||
			week.JSON("totals.by_kind.adjust.amount_usd").String() != "-0.5" || week.JSON("totals.net_usd").String() != "5.5" {
			t.Errorf("7d totals: %s", week.Body)
		}
		all := c.Must(200, "GET", "/admin/credits/user/payer/entries", nil)
		if all.JSON("period").String() != "all" || all.JSON("since").Type.String() != "Null" || all.JSON("totals.entries").Int() != 4 {
			t.Errorf("default period: %s", all.Body)
		}
		c.Refused(400, "period", "GET", "/admin/credits/user/payer/entries?period=1y", nil)
		c.Refused(400, "period", "GET", "/admin/credits/user/payer?period=week", nil)
		c.Refused(400, "limit", "GET", "/admin/credits/user/payer?limit=5000", nil)
	})
}
