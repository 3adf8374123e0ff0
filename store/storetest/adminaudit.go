package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// Admin tokens, the admin audit log, deployment overrides, and hostile filter values across every
// admin listing.

func testAdminTokens(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	want := store.AdminToken{ID: "tok1", Name: "ops", Prefix: "lgadm-AbCd", Role: store.RoleViewer,
		TenantID: "acme", CreatedBy: "bootstrap", CreatedAt: mins(0).Add(999), ExpiresAt: ptr(mins(60))}
	mustCreateToken(t, s, want, "th1")
	want.CreatedAt = mins(0)
	got, err := s.GetAdminToken(c, "tok1")
	if err != nil {
		t.Fatalf("GetAdminToken: %v", err)
	}
	assertToken(t, got, want)
	byHash, err := s.AdminTokenByHash(c, "th1")
	if err != nil {
		t.Fatalf("AdminTokenByHash: %v", err)
	}
	assertToken(t, byHash, want)

	global := store.AdminToken{ID: "tok2", Name: "root", Prefix: "p", Role: store.RoleAdmin, CreatedBy: "tok1",
		CreatedAt: mins(1)}
	mustCreateToken(t, s, global, "th2")
	if got, _ := s.AdminTokenByHash(c, "th2"); got.TenantID != "" || got.Role != store.RoleAdmin {
		t.Errorf("global token = %+v, want no tenant and role admin", got)
	}

	for _, tc := range []struct {
		name string
		tok  store.AdminToken
		hash string
		want error // nil: any error but these sentinels
	}{
		{"bad role", store.AdminToken{ID: "t3", Name: "x", Role: "superuser"}, "th3", nil},
		{"no role", store.AdminToken{ID: "t4", Name: "x"}, "th4", nil},
		{"unknown tenant", store.AdminToken{ID: "t5", Name: "x", Role: store.RoleBilling, TenantID: "ghost"}, "th5", store.ErrNotFound},
		{"duplicate id", store.AdminToken{ID: "tok1", Name: "x", Role: store.RoleAdmin}, "th6", store.ErrConflict},
		{"duplicate hash", store.AdminToken{ID: "t7", Name: "x", Role: store.RoleAdmin}, "th1", store.ErrConflict},
	} {
		err := s.CreateAdminToken(c, tc.tok, tc.hash)
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CreateAdminToken(%s): err = %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == nil && (err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)) {
			t.Errorf("CreateAdminToken(%s): err = %v, want a validation error", tc.name, err)
		}
		if _, err := s.AdminTokenByHash(c, tc.hash); tc.hash != "th1" && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateAdminToken(%s) left a token behind: %v", tc.name, err)
		}
	}
	if _, err := s.GetAdminToken(c, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAdminToken(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.AdminTokenByHash(c, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AdminTokenByHash(unknown): err = %v, want ErrNotFound", err)
	}

	// Revocation keeps the first time; the revoked token is still found by its hash (the caller
	// refuses it), as is an expired one.
	if err := s.RevokeAdminToken(c, "tok1", mins(10)); err != nil {
		t.Fatalf("RevokeAdminToken: %v", err)
	}
	if err := s.RevokeAdminToken(c, "tok1", mins(20)); err != nil {
		t.Fatalf("second RevokeAdminToken: %v", err)
	}
	want.RevokedAt = ptr(mins(10))
	if got, err := s.AdminTokenByHash(c, "th1"); err != nil {
		t.Errorf("AdminTokenByHash(revoked): %v", err)
	} else {
		assertToken(t, got, want)
	}
	if err := s.RevokeAdminToken(c, "ghost", mins(10)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeAdminToken(unknown): err = %v, want ErrNotFound", err)
	}

	// The last use is recorded, and only moves forward.
	for _, at := range []time.Time{mins(30), mins(40), mins(35)} {
		if err := s.TouchAdminToken(c, "tok2", at); err != nil {
			t.Fatalf("TouchAdminToken: %v", err)
		}
	}
	if got, _ := s.GetAdminToken(c, "tok2"); !timePtrEqual(got.LastUsedAt, ptr(mins(40))) || got.RevokedAt != nil {
		t.Errorf("after touches at 30, 40, 35: LastUsedAt = %v, RevokedAt %v; want %v, nil", got.LastUsedAt, got.RevokedAt, mins(40))
	}
	if err := s.TouchAdminToken(c, "ghost", mins(30)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchAdminToken(unknown): err = %v, want ErrNotFound", err)
	}
}

func testListAdminTokens(t *testing.T, s store.Store) {
	mustCreateTenant(t, s, "acme")
	roles := []string{store.RoleAdmin, store.RoleViewer, store.RoleBilling}
	var all []string // newest first
	for i := range 105 {
		tok := store.AdminToken{ID: fmt.Sprintf("t%03d", i), Name: fmt.Sprintf("Token %d", i),
			Role: roles[i%3], CreatedAt: mins(i)}
		if i%5 == 0 {
			tok.TenantID = "acme"
		}
		mustCreateToken(t, s, tok, "hash-"+tok.ID)
		all = append(all, tok.ID)
	}
	for _, id := range []string{"same-a", "same-c", "same-b"} {
		mustCreateToken(t, s, store.AdminToken{ID: id, Name: id, Role: store.RoleAdmin, CreatedAt: mins(500)}, "hash-"+id)
	}
	all = append(all, "same-a", "same-b", "same-c")
	slices.Reverse(all)

	if got := tokenIDs(t, s, store.AdminTokenFilter{}); !slices.Equal(got, all[:100]) {
		t.Errorf("ListAdminTokens() = %d tokens %v…, want the newest 100", len(got), got[:min(4, len(got))])
	}
	if got := tokenIDs(t, s, store.AdminTokenFilter{Limit: 50, Offset: 100}); !slices.Equal(got, all[100:]) {
		t.Errorf("ListAdminTokens(offset 100) = %v, want %v", got, all[100:])
	}
	filter := func(keep func(i int) bool) []string {
		var out []string
		for _, id := range all {
			var i int
			if _, err := fmt.Sscanf(id, "t%d", &i); err == nil && keep(i) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, tc := range []struct {
		f    store.AdminTokenFilter
		want []string
	}{
		{store.AdminTokenFilter{Role: store.RoleBilling, Limit: 1000}, filter(func(i int) bool { return i%3 == 2 })},
		{store.AdminTokenFilter{TenantID: "acme", Limit: 1000}, filter(func(i int) bool { return i%5 == 0 })},
		{store.AdminTokenFilter{TenantID: "acme", Role: store.RoleAdmin}, filter(func(i int) bool { return i%15 == 0 })},
		{store.AdminTokenFilter{Name: "token 10"}, []string{"t104", "t103", "t102", "t101", "t100", "t010"}},
		{store.AdminTokenFilter{Name: "same", Limit: 2, Offset: 1}, []string{"same-b", "same-a"}},
		{store.AdminTokenFilter{Role: "superuser"}, nil},
	} {
		if got := tokenIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListAdminTokens(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func testAdminAudit(t *testing.T, s store.Store) {
	c := ctx(t)
	entries := []store.AdminAuditEntry{
		{Actor: "bootstrap", Action: "tenant.create", Target: "acme", TenantID: "acme",
			After: []byte(`{"id": "acme", "name": "Acme"}`), RequestID: "r1", At: mins(0)},
		{Actor: "tok1", Action: "key.create", Target: "k1", TenantID: "acme",
			After: []byte(`{"id":"k1","models":["a","b"]}`), RequestID: "r2", At: mins(1)},
		{Actor: "tok1", Action: "key.revoke", Target: "k1", TenantID: "acme",
			Before: []byte(`{"revoked_at":null}`), After: []byte(`{"revoked_at":"2021-03-01T12:02:00Z"}`), At: mins(2)},
		{Actor: "tok2", Action: "keyring.rotate", Target: "ring", At: mins(2)}, // same time as the last
		{Actor: "tok2", Action: "tenant.key.delete", Target: "acme", Before: []byte(`{"a":[1,2,{"b":null}]}`), At: mins(3)},
		{Actor: "tok2", Action: "key", Target: "k2", TenantID: "other", At: mins(4)},
	}
	var ids []int64
	for _, e := range entries {
		id, err := s.InsertAdminAudit(c, e)
		if err != nil {
			t.Fatalf("InsertAdminAudit(%s): %v", e.Action, err)
		}
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Errorf("InsertAdminAudit ids %v then %d, want increasing", ids, id)
		}
		ids = append(ids, id)
	}
	// Newest first; the two entries at mins(2), by id descending.
	got := listAudit(t, s, store.AdminAuditFilter{})
	if want := []int64{ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}; !slices.Equal(auditIDs(got), want) {
		t.Fatalf("ListAdminAudit() = %v, want ids %v", auditIDs(got), want)
	}
	for i, g := range got {
		w := entries[len(entries)-1-i]
		if g.Actor != w.Actor || g.Action != w.Action || g.Target != w.Target || g.TenantID != w.TenantID ||
			g.RequestID != w.RequestID || !g.At.Equal(w.At) || !jsonEqual(t, g.Before, w.Before) ||
			!jsonEqual(t, g.After, w.After) {
			t.Errorf("entry %d = %+v (before %s, after %s)\nwant       %+v (before %s, after %s)",
				g.ID, g, g.Before, g.After, w, w.Before, w.After)
		}
	}

	for _, tc := range []struct {
		f    store.AdminAuditFilter
		want []int64
	}{
		{store.AdminAuditFilter{Actor: "tok1"}, []int64{ids[2], ids[1]}},
		{store.AdminAuditFilter{Action: "key.create"}, []int64{ids[1]}},
		{store.AdminAuditFilter{Action: "key."}, []int64{ids[2], ids[1]}}, // not keyring.*, tenant.key.*, key
		{store.AdminAuditFilter{Action: "key"}, []int64{ids[5]}},          // exact
		{store.AdminAuditFilter{Action: "tenant."}, []int64{ids[4], ids[0]}},
		{store.AdminAuditFilter{Action: "k_y."}, nil},
		{store.AdminAuditFilter{Action: "%."}, nil},
		{store.AdminAuditFilter{Action: "key.%"}, nil},
		{store.AdminAuditFilter{Action: "KEY."}, nil}, // case-sensitive, like the exact match
		{store.AdminAuditFilter{Target: "acme"}, []int64{ids[4], ids[0]}},
		{store.AdminAuditFilter{TenantID: "acme"}, []int64{ids[2], ids[1], ids[0]}},
		{store.AdminAuditFilter{TenantID: "acme", Action: "key.", Actor: "tok1", Target: "k1"}, []int64{ids[2], ids[1]}},
		{store.AdminAuditFilter{From: mins(2)}, []int64{ids[5], ids[4], ids[3], ids[2]}},
		{store.AdminAuditFilter{To: mins(2)}, []int64{ids[1], ids[0]}},
		{store.AdminAuditFilter{From: mins(1), To: mins(3)}, []int64{ids[3], ids[2], ids[1]}},
		{store.AdminAuditFilter{Limit: 2, Offset: 2}, []int64{ids[3], ids[2]}},
		{store.AdminAuditFilter{Offset: 6}, nil},
	} {
		if got := auditIDs(listAudit(t, s, tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("ListAdminAudit(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	// A zero At is now; a document that is not JSON is refused.
	before := time.Now().Add(-time.Second)
	id, err := s.InsertAdminAudit(c, store.AdminAuditEntry{Actor: "a", Action: "x.y"})
	if err != nil {
		t.Fatalf("InsertAdminAudit without a time: %v", err)
	}
	if got := listAudit(t, s, store.AdminAuditFilter{Action: "x.y"}); len(got) != 1 || got[0].ID != id ||
		got[0].At.Before(before) || got[0].At.After(time.Now().Add(time.Second)) || got[0].Before != nil || got[0].After != nil {
		t.Errorf("entry without a time = %+v, want At now and no documents", got)
	}
	if _, err := s.InsertAdminAudit(c, store.AdminAuditEntry{Actor: "a", Action: "x.z", After: []byte("{not json")}); err == nil {
		t.Error("InsertAdminAudit with After that is not JSON: no error")
	}
	if got := listAudit(t, s, store.AdminAuditFilter{Action: "x.z"}); len(got) != 0 {
		t.Errorf("the refused entry was written: %+v", got)
	}
	// Many entries: the default page is 100.
	for i := range 120 {
		if _, err := s.InsertAdminAudit(c, store.AdminAuditEntry{Actor: "bulk", Action: "bulk.x", At: mins(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := listAudit(t, s, store.AdminAuditFilter{Actor: "bulk"}); len(got) != 100 || !got[0].At.Equal(mins(219)) {
		t.Errorf("ListAdminAudit(bulk) = %d entries, first at %v; want 100, newest first", len(got), got[0].At)
	}
}

func testDeploymentOverrides(t *testing.T, s store.Store) {
	c := ctx(t)
	if got, err := s.DeploymentOverrides(c); err != nil || len(got) != 0 {
		t.Fatalf("DeploymentOverrides() on an empty store = %+v, %v", got, err)
	}
	before := time.Now().Add(-time.Second)
	puts := []store.DeploymentOverride{
		{DeploymentID: "openai-b", Enabled: ptr(false), Weight: ptr(0), UpdatedBy: "tok1", UpdatedAt: mins(0)},
		{DeploymentID: "azure-a", Weight: ptr(5), UpdatedBy: "bootstrap"},
		{DeploymentID: "Zed", Enabled: ptr(true)},
	}
	for _, o := range puts {
		if err := s.PutDeploymentOverride(c, o); err != nil {
			t.Fatalf("PutDeploymentOverride(%s): %v", o.DeploymentID, err)
		}
	}
	after := time.Now().Add(time.Second)
	got, err := s.DeploymentOverrides(c)
	if err != nil {
		t.Fatalf("DeploymentOverrides: %v", err)
	}
	assertOverrides(t, got, []store.DeploymentOverride{puts[2], puts[1], puts[0]}, before, after)

	// Put replaces the whole override: a nil field now keeps what the file says.
	before = time.Now().Add(-time.Second)
	repl := store.DeploymentOverride{DeploymentID: "azure-a", Enabled: ptr(false), UpdatedBy: "tok2"}
	if err := s.PutDeploymentOverride(c, repl); err != nil {
		t.Fatalf("PutDeploymentOverride: %v", err)
	}
	got, _ = s.DeploymentOverrides(c)
	assertOverrides(t, got[1:2], []store.DeploymentOverride{repl}, before, time.Now().Add(time.Second))

	for _, bad := range []store.DeploymentOverride{{DeploymentID: "x", Weight: ptr(-1)}, {Weight: ptr(1)}} {
		if err := s.PutDeploymentOverride(c, bad); err == nil {
			t.Errorf("PutDeploymentOverride(%+v): no error", bad)
		}
	}
	if err := s.DeleteDeploymentOverride(c, "azure-a"); err != nil {
		t.Fatalf("DeleteDeploymentOverride: %v", err)
	}
	if err := s.DeleteDeploymentOverride(c, "azure-a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteDeploymentOverride: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteDeploymentOverride(c, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteDeploymentOverride(unknown): err = %v, want ErrNotFound", err)
	}
	got, _ = s.DeploymentOverrides(c)
	if ids := idsOf(got, func(o store.DeploymentOverride) string { return o.DeploymentID }); !slices.Equal(ids, []string{"Zed", "openai-b"}) {
		t.Errorf("overrides after the deletion = %v, want [Zed openai-b]", ids)
	}
}

// testAdminMetacharacters: hostile values in every admin filter are values, never SQL: they match
// no plain row, break nothing, and a row holding one is found by it exactly.
func testAdminMetacharacters(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	mustCreateUser(t, s, store.User{ID: "u1", TenantID: "acme", Tier: "pro", ExternalID: "e1", Email: "u1@x.io"})
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "ci", Prefix: "sk-lg-1", UserID: "u1"}, "h1")
	mustCreateToken(t, s, store.AdminToken{ID: "t1", Name: "ops", Role: store.RoleAdmin, TenantID: "acme"}, "th1")
	if _, err := s.InsertAdminAudit(c, store.AdminAuditEntry{Actor: "t1", Action: "key.create", Target: "k1", TenantID: "acme"}); err != nil {
		t.Fatal(err)
	}

	nasty := []string{`'; DROP TABLE users; --`, `' OR '1'='1`, `" OR ""="`, `%' OR 1=1 --`, `\`, `\'`,
		`$1`, `?`, `) OR (1=1`, "nul\x01byte", `%.`, `'.`, `admin' --`}
	for _, v := range nasty {
		lists := map[string]int{}
		count := func(what string, n int, err error) {
			if err != nil {
				t.Errorf("%s with %q: %v", what, v, err)
			}
			lists[what] = n
		}
		ts, err := s.ListTenants(c, store.TenantFilter{Search: v, IncludeDeleted: true})
		count("ListTenants(search)", len(ts), err)
		for _, f := range []store.UserFilter{{Email: v}, {Search: v}, {TenantID: v}, {Tier: v}, {ExternalID: v}} {
			us, err := s.ListUsers(c, f)
			count(fmt.Sprintf("ListUsers(%+v)", f), len(us), err)
		}
		for _, f := range []store.KeyFilter{{Name: v}, {Prefix: v}, {UserID: v}, {TenantID: v}} {
			ks, err := s.ListKeys(c, f)
			count(fmt.Sprintf("ListKeys(%+v)", f), len(ks), err)
		}
		for _, f := range []store.AdminTokenFilter{{Name: v}, {Role: v}, {TenantID: v}} {
			ts, err := s.ListAdminTokens(c, f)
			count(fmt.Sprintf("ListAdminTokens(%+v)", f), len(ts), err)
		}
		for _, f := range []store.AdminAuditFilter{{Actor: v}, {Action: v}, {Action: v + "."}, {Target: v}, {TenantID: v}} {
			es, err := s.ListAdminAudit(c, f)
			count(fmt.Sprintf("ListAdminAudit(%+v)", f), len(es), err)
		}
		for what, n := range lists {
			if n != 0 {
				t.Errorf("%s with %q: %d rows, want none", what, v, n)
			}
		}
		if _, err := s.AdminTokenByHash(c, v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AdminTokenByHash(%q): err = %v, want ErrNotFound", v, err)
		}
		if err := s.DeleteDeploymentOverride(c, v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteDeploymentOverride(%q): err = %v, want ErrNotFound", v, err)
		}
	}
	// Everything is still there.
	if got := userIDs(t, s, store.UserFilter{}); !slices.Equal(got, []string{"u1"}) {
		t.Errorf("users after the hostile filters = %v, want [u1]", got)
	}
	if got := keyIDs(t, s, store.KeyFilter{}); !slices.Equal(got, []string{"k1"}) {
		t.Errorf("keys after the hostile filters = %v, want [k1]", got)
	}
	if got := tokenIDs(t, s, store.AdminTokenFilter{}); !slices.Equal(got, []string{"t1"}) {
		t.Errorf("admin tokens after the hostile filters = %v, want [t1]", got)
	}
	if got := listAudit(t, s, store.AdminAuditFilter{}); len(got) != 1 {
		t.Errorf("%d audit entries after the hostile filters, want 1", len(got))
	}

	// Rows holding the values are found by them, and only by them.
	for i, v := range nasty {
		id := fmt.Sprintf("n%02d", i)
		if err := s.CreateTenant(c, store.Tenant{ID: id, Name: v, Metadata: map[string]string{v: v}}); err != nil {
			t.Fatalf("CreateTenant(name %q): %v", v, err)
		}
		mustCreateUser(t, s, store.User{ID: "u" + id, TenantID: id, Tier: v, ExternalID: v, Email: v,
			CreatedAt: mins(i)})
		mustCreateToken(t, s, store.AdminToken{ID: "t" + id, Name: v, Role: store.RoleViewer, CreatedAt: mins(i)}, "th"+id)
		if _, err := s.InsertAdminAudit(c, store.AdminAuditEntry{Actor: v, Action: v, Target: v, TenantID: v}); err != nil {
			t.Fatalf("InsertAdminAudit(%q): %v", v, err)
		}
	}
	for i, v := range nasty {
		id := fmt.Sprintf("n%02d", i)
		if got := tenantIDs(t, s, store.TenantFilter{Search: v}); !slices.Contains(got, id) {
			t.Errorf("ListTenants(search %q) = %v, want it to hold %s", v, got, id)
		}
		if tn := getTenant(t, s, id); tn.Name != v || tn.Metadata[v] != v {
			t.Errorf("tenant %s = %+v, want name and metadata %q", id, tn, v)
		}
		if got := userIDs(t, s, store.UserFilter{ExternalID: v, Tier: v, TenantID: id}); !slices.Equal(got, []string{"u" + id}) {
			t.Errorf("ListUsers(exact %q) = %v, want [u%s]", v, got, id)
		}
		if got := userIDs(t, s, store.UserFilter{Email: v, Search: v}); !slices.Contains(got, "u"+id) {
			t.Errorf("ListUsers(email, search %q) = %v, want it to hold u%s", v, got, id)
		}
		if got := tokenIDs(t, s, store.AdminTokenFilter{Name: v}); !slices.Contains(got, "t"+id) {
			t.Errorf("ListAdminTokens(name %q) = %v, want it to hold t%s", v, got, id)
		}
		if got := listAudit(t, s, store.AdminAuditFilter{Actor: v, Action: v, Target: v, TenantID: v}); len(got) != 1 {
			t.Errorf("ListAdminAudit(every field %q) = %d entries, want 1", v, len(got))
		}
	}
}

func mustCreateToken(t *testing.T, s store.Store, tok store.AdminToken, hash string) {
	t.Helper()
	if err := s.CreateAdminToken(ctx(t), tok, hash); err != nil {
		t.Fatalf("CreateAdminToken(%s): %v", tok.ID, err)
	}
}

func tokenIDs(t *testing.T, s store.Store, f store.AdminTokenFilter) []string {
	t.Helper()
	ts, err := s.ListAdminTokens(ctx(t), f)
	if err != nil {
		t.Fatalf("ListAdminTokens(%+v): %v", f, err)
	}
	return idsOf(ts, func(tok store.AdminToken) string { return tok.ID })
}

func listAudit(t *testing.T, s store.Store, f store.AdminAuditFilter) []store.AdminAuditEntry {
	t.Helper()
	es, err := s.ListAdminAudit(ctx(t), f)
	if err != nil {
		t.Fatalf("ListAdminAudit(%+v): %v", f, err)
	}
	return es
}

func auditIDs(es []store.AdminAuditEntry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// jsonEqual compares two JSON documents by value (PostgreSQL's jsonb normalises spacing and key
// order); nil equals only nil.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var av, bv any
	if err := json.Unmarshal(a, &av); err != nil {
		t.Errorf("stored document %q is not JSON: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &bv); err != nil {
		t.Fatalf("test document %q is not JSON: %v", b, err)
	}
	return reflect.DeepEqual(av, bv)
}

func assertToken(t *testing.T, got, want store.AdminToken) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Prefix != want.Prefix || got.Role != want.Role ||
		got.TenantID != want.TenantID || got.CreatedBy != want.CreatedBy || !got.CreatedAt.Equal(want.CreatedAt) ||
		!timePtrEqual(got.ExpiresAt, want.ExpiresAt) || !timePtrEqual(got.RevokedAt, want.RevokedAt) ||
		!timePtrEqual(got.LastUsedAt, want.LastUsedAt) {
		t.Errorf("admin token = %+v\nwant          %+v", got, want)
	}
}

// assertOverrides compares overrides in order, their UpdatedAt within [from, to] whatever was put.
func assertOverrides(t *testing.T, got, want []store.DeploymentOverride, from, to time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d overrides %+v, want %d", len(got), got, len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.DeploymentID != w.DeploymentID || !reflect.DeepEqual(g.Enabled, w.Enabled) ||
			!reflect.DeepEqual(g.Weight, w.Weight) || g.UpdatedBy != w.UpdatedBy ||
			g.UpdatedAt.Before(from) || g.UpdatedAt.After(to) {
			t.Errorf("override %d = %s\nwant         %s, updated in [%v, %v]", i, fmtOverride(g), fmtOverride(w), from, to)
		}
	}
}

func fmtOverride(o store.DeploymentOverride) string {
	s := fmt.Sprintf("%s by %q at %v:", o.DeploymentID, o.UpdatedBy, o.UpdatedAt)
	if o.Enabled != nil {
		s += fmt.Sprintf(" enabled %v", *o.Enabled)
	}
	if o.Weight != nil {
		s += fmt.Sprintf(" weight %d", *o.Weight)
	}
	return s
}
