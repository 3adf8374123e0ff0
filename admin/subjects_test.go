package admin_test

import (
	"testing"
	"time"
)

// TestBillingSummaryDefaultsToThisMonth: without month the summary is the current UTC month's,
// and says which month that is.
func TestBillingSummaryDefaultsToThisMonth(t *testing.T) {
	c := newServer(t, backend{}).client(t)
	r := c.Must(200, "GET", "/admin/billing/summary", nil)
	if got, want := r.JSON("month").String(), time.Now().UTC().Format("2006-01"); got != want {
		// Near midnight UTC on the last day of a month the month may have turned between the
		// two readings; anything else is wrong.
		if next := time.Now().UTC().Format("2006-01"); got != next {
			t.Errorf("month %q, want %q: %s", got, want, r.Body)
		}
	}
	if !r.JSON("total.requests").Exists() {
		t.Errorf("no totals: %s", r.Body)
	}
	c.Refused(400, "month", "GET", "/admin/billing/summary?month=2026-13", nil)
}

// TestWritesForUnknownSubjectsRefused: a quota policy or a credit movement for a user, tenant or
// key that does not exist is refused with 404 naming the path field, and stores nothing; with
// allow_unknown_subject=true it is accepted. Soft-deleted subjects stay writable, and a token
// scoped to a tenant never reaches a subject outside it, flag or not.
func TestWritesForUnknownSubjectsRefused(t *testing.T) {
	srv := newServer(t, backend{})
	c := srv.client(t)
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "subj-t", "name": "t"})
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "subj-u", "tenant_id": "subj-t"})
	key := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "k", "user_id": "subj-u"}).JSON("id").String()

	for _, tc := range []struct {
		method, path string
		body         any
		code, param  string
	}{
		{"PUT", "/admin/quota/policy/ghost", map[string]any{"userRpm": 5}, "user_not_found", "userId"},
		{"PUT", "/admin/quota/policies/user/ghost", map[string]any{"rpm": 5}, "user_not_found", "subjectId"},
		{"PUT", "/admin/quota/policies/key/key_ghost", map[string]any{"rpm": 5}, "key_not_found", "subjectId"},
		{"PUT", "/admin/quota/policies/tenant/ghost", map[string]any{"rpm": 5}, "tenant_not_found", "subjectId"},
		{"POST", "/admin/credits/user/ghost/topup", map[string]any{"amount_usd": "5"}, "user_not_found", "subjectId"},
		{"POST", "/admin/credits/user/ghost/adjust", map[string]any{"amount_usd": "-5"}, "user_not_found", "subjectId"},
		{"POST", "/admin/credits/tenant/ghost/topup", map[string]any{"amount_usd": "5"}, "tenant_not_found", "subjectId"},
	} {
		r := c.Refused(404, tc.param, tc.method, tc.path, tc.body)
		if got := r.JSON("error.code").String(); got != tc.code {
			t.Errorf("%s %s: code %q, want %q", tc.method, tc.path, got, tc.code)
		}
	}
	// Nothing was stored for the ghosts.
	for _, p := range []string{"/admin/quota/policies/user/ghost", "/admin/quota/policies/key/key_ghost", "/admin/quota/policies/tenant/ghost"} {
		if r := c.Must(200, "GET", p, nil); len(r.JSON("data").Array()) != 0 {
			t.Errorf("GET %s after a refused write: %s", p, r.Body)
		}
	}
	c.Refused(404, "subjectId", "GET", "/admin/credits/user/ghost", nil)
	c.Refused(404, "subjectId", "GET", "/admin/credits/tenant/ghost", nil)

	// Subjects that exist: written as before.
	c.Must(200, "PUT", "/admin/quota/policy/subj-u", map[string]any{"userRpm": 5})
	c.Must(200, "PUT", "/admin/quota/policies/key/"+key, map[string]any{"rpm": 5})
	c.Must(200, "PUT", "/admin/quota/policies/tenant/subj-t", map[string]any{"rpm": 50})
	c.Must(200, "POST", "/admin/credits/user/subj-u/topup", map[string]any{"amount_usd": "1"})
	c.Must(200, "POST", "/admin/credits/tenant/subj-t/adjust", map[string]any{"amount_usd": "1"})

	// Said explicitly: a policy or an account ahead of (or after) its subject.
	c.Must(200, "PUT", "/admin/quota/policy/later?allow_unknown_subject=true", map[string]any{"userRpm": 5})
	c.Must(200, "PUT", "/admin/quota/policies/tenant/later?allow_unknown_subject=true", map[string]any{"rpm": 5})
	if r := c.Must(200, "POST", "/admin/credits/user/later/topup?allow_unknown_subject=true", map[string]any{"amount_usd": "2"}); r.JSON("balance_usd").String() != "2" {
		t.Errorf("top-up ahead of its user: %s", r.Body)
	}
	c.Refused(400, "allow_unknown_subject", "PUT", "/admin/quota/policy/later?allow_unknown_subject=maybe", map[string]any{"userRpm": 5})

	// A soft-deleted user is still a subject: its policies and credits stay manageable.
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "subj-gone", "tenant_id": "subj-t"})
	c.Must(200, "DELETE", "/admin/users/subj-gone", nil)
	c.Must(200, "POST", "/admin/credits/user/subj-gone/adjust", map[string]any{"amount_usd": "1"})
	c.Must(200, "PUT", "/admin/quota/policies/user/subj-gone", map[string]any{"rpm": 1})

	// A token scoped to the tenant: its own subjects are writable; unknown ones are not, even
	// with the flag (an unknown subject belongs to no tenant the token may reach).
	tok := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "subj", "role": "admin", "tenant_id": "subj-t"}).JSON("token").String()
	sc := c.As(tok)
	sc.Must(200, "PUT", "/admin/quota/policies/user/subj-u", map[string]any{"rpm": 4})
	sc.Refused(404, "subjectId", "PUT", "/admin/quota/policies/user/ghost2?allow_unknown_subject=true", map[string]any{"rpm": 4})
	sc.Refused(404, "userId", "PUT", "/admin/quota/policy/ghost2?allow_unknown_subject=true", map[string]any{"userRpm": 4})
	if r := c.Must(200, "GET", "/admin/quota/policies/user/ghost2", nil); len(r.JSON("data").Array()) != 0 {
		t.Errorf("a scoped token wrote a policy for an unknown user: %s", r.Body)
	}
}
