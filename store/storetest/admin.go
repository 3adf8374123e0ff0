package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// The admin API's side of tenants and users: allowlists and metadata, listing with escaped LIKE
// filters, updates and soft deletion. Keys are in adminkeys.go; admin tokens, the audit log and
// deployment overrides in adminaudit.go.

// day0 is the base of the explicit times these tests pass: in the past, so "now" is after them all.
var day0 = time.Date(2021, 3, 1, 12, 0, 0, 0, time.UTC)

func mins(n int) time.Time { return day0.Add(time.Duration(n) * time.Minute) }

func testTenantFields(t *testing.T, s store.Store) {
	c := ctx(t)
	created := time.Date(2026, 2, 3, 4, 5, 6, 789123456, time.UTC)
	want := store.Tenant{ID: "acme", Name: "Acme", Models: []string{"gpt-4o", "claude-sonnet"},
		Metadata: map[string]string{"plan": "gold", "ünï": "cødé ✓", "quote": `"'`}, CreatedAt: created}
	if err := s.CreateTenant(c, want); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	want.CreatedAt = created.Truncate(time.Microsecond)
	assertTenant(t, getTenant(t, s, "acme"), want)

	// An empty allowlist is every model, read back nil; metadata is never nil.
	for i, models := range [][]string{nil, {}} {
		id := fmt.Sprintf("t%d", i)
		if err := s.CreateTenant(c, store.Tenant{ID: id, Name: id, Models: models}); err != nil {
			t.Fatalf("CreateTenant(%s): %v", id, err)
		}
		got := getTenant(t, s, id)
		if got.Models != nil || got.Metadata == nil || len(got.Metadata) != 0 || got.CreatedAt.IsZero() ||
			got.UpdatedAt != nil || got.DeletedAt != nil {
			t.Errorf("tenant with models %#v = %+v, want nil models, empty metadata, a creation time", models, got)
		}
	}
	def := getTenant(t, s, store.DefaultTenant)
	if def.Models != nil || def.Metadata == nil || def.DeletedAt != nil {
		t.Errorf("default tenant = %+v, want every model, empty metadata, live", def)
	}
}

func testListTenants(t *testing.T, s store.Store) {
	c := ctx(t)
	ids := []string{store.DefaultTenant}
	for i := range 104 {
		id := fmt.Sprintf("p%03d", i)
		mustCreateTenant(t, s, id)
		ids = append(ids, id)
	}
	for _, tn := range []store.Tenant{{ID: "Zeta", Name: "Zeta GmbH"}, {ID: "alpha", Name: "ACME Corp"}} {
		if err := s.CreateTenant(c, tn); err != nil {
			t.Fatalf("CreateTenant(%s): %v", tn.ID, err)
		}
		ids = append(ids, tn.ID)
	}
	slices.Sort(ids) // byte order: "Zeta" before "alpha" and "default"

	if got := tenantIDs(t, s, store.TenantFilter{}); !slices.Equal(got, ids[:100]) {
		t.Errorf("ListTenants() = %d tenants %v…, want the first 100 by id", len(got), got[:min(3, len(got))])
	}
	if got := tenantIDs(t, s, store.TenantFilter{Limit: 5, Offset: 100}); !slices.Equal(got, ids[100:105]) {
		t.Errorf("ListTenants(limit 5, offset 100) = %v, want %v", got, ids[100:105])
	}
	if got := tenantIDs(t, s, store.TenantFilter{Limit: 1000, Offset: 105}); !slices.Equal(got, ids[105:]) {
		t.Errorf("ListTenants(offset 105) = %v, want %v", got, ids[105:])
	}
	// Search matches the id or the name, ignoring case.
	for search, want := range map[string][]string{
		"acme":  {"alpha"},
		"ZETA":  {"Zeta"},
		"p10":   {"p100", "p101", "p102", "p103"},
		"gmbh":  {"Zeta"},
		"nopez": nil,
	} {
		if got := tenantIDs(t, s, store.TenantFilter{Search: search}); !slices.Equal(got, want) {
			t.Errorf("ListTenants(search %q) = %v, want %v", search, got, want)
		}
	}
}

// testLikeEscaping: LIKE's wildcards and its escape character in a filter value match themselves
// only, in every substring and prefix filter.
func testLikeEscaping(t *testing.T, s store.Store) {
	c := ctx(t)
	odd := `a%b_c\d`
	for _, tn := range []store.Tenant{{ID: "odd", Name: odd}, {ID: "plain", Name: "abxcd"},
		{ID: "under", Name: "x_y"}} {
		if err := s.CreateTenant(c, tn); err != nil {
			t.Fatalf("CreateTenant(%s): %v", tn.ID, err)
		}
	}
	for search, want := range map[string][]string{
		"%b_":   {"odd"}, // unescaped, it would match "abxcd" too
		"%":     {"odd"},
		"_":     {"odd", "under"},
		`\`:     {"odd"},
		`c\d`:   {"odd"},
		`%b_c\`: {"odd"},
		"b%":    nil, // "abxcd" has no literal %
		`\%`:    nil,
		"%%":    nil,
	} {
		if got := tenantIDs(t, s, store.TenantFilter{Search: search}); !slices.Equal(got, want) {
			t.Errorf("ListTenants(search %q) = %v, want %v", search, got, want)
		}
	}

	mustCreateUser(t, s, store.User{ID: "u-odd", Tier: "t", Email: "a_b@x.io", ExternalID: "ext%1", CreatedAt: mins(0)})
	mustCreateUser(t, s, store.User{ID: "u-plain", Tier: "t", Email: "axb@x.io", ExternalID: "ext11", CreatedAt: mins(1)})
	for _, tc := range []struct {
		f    store.UserFilter
		want []string
	}{
		{store.UserFilter{Email: "a_b"}, []string{"u-odd"}},
		{store.UserFilter{Email: "_"}, []string{"u-odd"}},
		{store.UserFilter{Email: "%"}, nil},
		{store.UserFilter{Search: "%"}, []string{"u-odd"}},
		{store.UserFilter{Search: "t%1"}, []string{"u-odd"}},
		{store.UserFilter{Search: "x.io"}, []string{"u-plain", "u-odd"}},
	} {
		if got := userIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListUsers(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	mustCreateKey(t, s, store.APIKey{ID: "k-odd", Name: "50%_off", Prefix: `sk_%\x`, CreatedAt: mins(1)}, "h-odd")
	mustCreateKey(t, s, store.APIKey{ID: "k-plain", Name: "500 off", Prefix: "skA%x", CreatedAt: mins(0)}, "h-plain")
	for _, tc := range []struct {
		f    store.KeyFilter
		want []string
	}{
		{store.KeyFilter{Name: "%"}, []string{"k-odd"}},
		{store.KeyFilter{Name: "0_"}, nil},
		{store.KeyFilter{Name: "%_"}, []string{"k-odd"}},
		{store.KeyFilter{Name: "0 "}, []string{"k-plain"}},
		{store.KeyFilter{Prefix: "sk_"}, []string{"k-odd"}},
		{store.KeyFilter{Prefix: `sk_%\`}, []string{"k-odd"}},
		{store.KeyFilter{Prefix: "%"}, nil},
		{store.KeyFilter{Prefix: "sk"}, []string{"k-odd", "k-plain"}},
		{store.KeyFilter{Prefix: "skA"}, []string{"k-plain"}},
		{store.KeyFilter{Prefix: "ska"}, nil}, // base62: case matters in a prefix
	} {
		if got := keyIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListKeys(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	mustCreateToken(t, s, store.AdminToken{ID: "a-odd", Name: "ops_100%", Role: store.RoleAdmin, CreatedAt: mins(1)}, "th-odd")
	mustCreateToken(t, s, store.AdminToken{ID: "a-plain", Name: "opsX100", Role: store.RoleAdmin, CreatedAt: mins(0)}, "th-plain")
	for name, want := range map[string][]string{
		"s_1": {"a-odd"},
		"%":   {"a-odd"},
		"OPS": {"a-odd", "a-plain"},
		"_%":  nil,
	} {
		if got := tokenIDs(t, s, store.AdminTokenFilter{Name: name}); !slices.Equal(got, want) {
			t.Errorf("ListAdminTokens(name %q) = %v, want %v", name, got, want)
		}
	}
}

func testUpdateTenant(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateTenant(c, store.Tenant{ID: "acme", Name: "Acme", Models: []string{"a"},
		Metadata: map[string]string{"k": "v"}, CreatedAt: mins(0)}); err != nil {
		t.Fatal(err)
	}
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "k1", Prefix: "p", TenantID: "acme"}, "h1")

	upd := store.Tenant{ID: "acme", Name: "Acme 2", Models: []string{"b", "c"},
		Metadata: map[string]string{"x": "y"}, UpdatedAt: ptr(mins(5))}
	if err := s.UpdateTenant(c, upd); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	want := upd
	want.CreatedAt = mins(0)
	assertTenant(t, getTenant(t, s, "acme"), want)
	// The key reads its tenant's new allowlist.
	if k, err := s.KeyBySecret(c, "h1", mins(6)); err != nil || !slices.Equal(k.TenantModels, []string{"b", "c"}) {
		t.Errorf("KeyBySecret after UpdateTenant: TenantModels = %v, %v; want [b c]", k.TenantModels, err)
	}

	// No UpdatedAt: now. Empty models and metadata replace what was there.
	before := time.Now().Add(-time.Second)
	if err := s.UpdateTenant(c, store.Tenant{ID: "acme", Name: "Acme 3"}); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	got := getTenant(t, s, "acme")
	if got.Name != "Acme 3" || got.Models != nil || got.Metadata == nil || len(got.Metadata) != 0 ||
		got.UpdatedAt == nil || got.UpdatedAt.Before(before) || got.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("after a bare UpdateTenant: %+v, want name Acme 3, every model, empty metadata, UpdatedAt now", got)
	}
	if k, _ := s.GetKey(c, "k1"); k.TenantModels != nil {
		t.Errorf("GetKey: TenantModels = %v, want nil (every model)", k.TenantModels)
	}

	if err := s.UpdateTenant(c, store.Tenant{ID: "ghost", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateTenant(unknown): err = %v, want ErrNotFound", err)
	}
	mustCreateTenant(t, s, "gone")
	if err := s.DeleteTenant(c, "gone", mins(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateTenant(c, store.Tenant{ID: "gone", Name: "back"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateTenant(deleted): err = %v, want ErrNotFound", err)
	}
	if got := getTenant(t, s, "gone"); got.Name != "gone" || got.UpdatedAt != nil {
		t.Errorf("a refused update changed the deleted tenant: %+v", got)
	}
}

func testDeleteTenant(t *testing.T, s store.Store) {
	c := ctx(t)
	err := s.DeleteTenant(c, store.DefaultTenant, mins(0))
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "default") {
		t.Errorf("DeleteTenant(default): err = %v, want ErrConflict saying why", err)
	}
	if got := getTenant(t, s, store.DefaultTenant); got.DeletedAt != nil {
		t.Errorf("default tenant deleted: %+v", got)
	}

	mustCreateTenant(t, s, "acme")
	mustCreateUser(t, s, store.User{ID: "u1", TenantID: "acme", Tier: "pro"})
	err = s.DeleteTenant(c, "acme", mins(1))
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "user") {
		t.Errorf("DeleteTenant with a live user: err = %v, want ErrConflict saying why", err)
	}
	if err := s.DeleteUser(c, "u1", mins(2)); err != nil {
		t.Fatal(err)
	}
	// A key of the tenant without a user, expired but not revoked, still holds it.
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "svc", Prefix: "p", TenantID: "acme",
		ExpiresAt: ptr(mins(-60))}, "h1")
	err = s.DeleteTenant(c, "acme", mins(3))
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "key") {
		t.Errorf("DeleteTenant with a key not revoked: err = %v, want ErrConflict saying why", err)
	}
	if got := getTenant(t, s, "acme"); got.DeletedAt != nil {
		t.Fatalf("a refused DeleteTenant deleted it: %+v", got)
	}
	if err := s.RevokeKey(c, "k1", mins(4)); err != nil {
		t.Fatal(err)
	}
	at := mins(5).Add(123456789)
	if err := s.DeleteTenant(c, "acme", at); err != nil {
		t.Fatalf("DeleteTenant with deleted users and revoked keys: %v", err)
	}
	got := getTenant(t, s, "acme")
	if got.DeletedAt == nil || !got.DeletedAt.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("DeletedAt = %v, want %v", got.DeletedAt, at)
	}
	if err := s.DeleteTenant(c, "acme", mins(9)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteTenant: err = %v, want ErrNotFound", err)
	}
	if got := getTenant(t, s, "acme"); !timePtrEqual(got.DeletedAt, ptr(at.Truncate(time.Microsecond))) {
		t.Errorf("second DeleteTenant moved DeletedAt to %v", got.DeletedAt)
	}
	if err := s.DeleteTenant(c, "ghost", mins(9)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteTenant(unknown): err = %v, want ErrNotFound", err)
	}

	// Nothing new joins a deleted tenant; listings leave it out unless asked.
	if err := s.CreateUser(c, store.User{ID: "u2", TenantID: "acme", Tier: "pro"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateUser in a deleted tenant: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUser(c, "u2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused user exists: %v", err)
	}
	if err := s.CreateKey(c, store.APIKey{ID: "k2", Name: "x", Prefix: "p", TenantID: "acme"}, "h2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateKey in a deleted tenant: err = %v, want ErrNotFound", err)
	}
	if got := tenantIDs(t, s, store.TenantFilter{}); !slices.Equal(got, []string{store.DefaultTenant}) {
		t.Errorf("ListTenants() = %v, want only the default tenant", got)
	}
	if got := tenantIDs(t, s, store.TenantFilter{IncludeDeleted: true}); !slices.Equal(got, []string{"acme", store.DefaultTenant}) {
		t.Errorf("ListTenants(include deleted) = %v, want [acme default]", got)
	}
}

func testUserFields(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	mustCreateTenant(t, s, "other")
	want := store.User{ID: "u1", TenantID: "acme", Tier: "pro", ExternalID: "ext-1", Email: "a@x.io",
		Metadata: map[string]string{"team": "ml", "cost-center": "42"}, CreatedAt: mins(0)}
	mustCreateUser(t, s, want)
	assertUser(t, getUser(t, s, "u1"), want)

	if err := s.CreateUser(c, store.User{ID: "u2", TenantID: "acme", Tier: "pro", ExternalID: "ext-1"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate external id in a tenant: err = %v, want ErrConflict", err)
	}
	mustCreateUser(t, s, store.User{ID: "u3", TenantID: "other", Tier: "pro", ExternalID: "ext-1"})
	mustCreateUser(t, s, store.User{ID: "u4", TenantID: "acme", Tier: "pro"})
	mustCreateUser(t, s, store.User{ID: "u5", TenantID: "acme", Tier: "pro"}) // two without an external id
	if err := s.CreateUser(c, store.User{ID: "u1", TenantID: "other", Tier: "pro"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate user id: err = %v, want ErrConflict", err)
	}
	if err := s.CreateUser(c, store.User{ID: "u6", TenantID: "ghost", Tier: "pro"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateUser in an unknown tenant: err = %v, want ErrNotFound", err)
	}
	// A deleted user's external id is free again: the same person can be provisioned anew.
	if err := s.DeleteUser(c, "u1", mins(1)); err != nil {
		t.Fatal(err)
	}
	mustCreateUser(t, s, store.User{ID: "u7", TenantID: "acme", Tier: "pro", ExternalID: "ext-1", CreatedAt: mins(10)})
	if got := userIDs(t, s, store.UserFilter{TenantID: "acme", ExternalID: "ext-1", IncludeDeleted: true}); !slices.Equal(got, []string{"u7", "u1"}) {
		t.Errorf("users of external id ext-1 in acme = %v, want [u7 u1]", got)
	}
}

func testListUsers(t *testing.T, s store.Store) {
	mustCreateTenant(t, s, "acme")
	var all []string // newest first
	for i := range 103 {
		id := fmt.Sprintf("u%03d", i)
		tenant, tier := "", "free"
		if i%4 == 0 {
			tenant, tier = "acme", "pro"
		}
		mustCreateUser(t, s, store.User{ID: id, TenantID: tenant, Tier: tier, ExternalID: "ext-" + id,
			Email: id + "@Example.com", CreatedAt: mins(i)})
		all = append(all, id)
	}
	// Three users created at the same time come newest first by id, descending.
	for _, id := range []string{"same-a", "same-c", "same-b"} {
		mustCreateUser(t, s, store.User{ID: id, Tier: "free", CreatedAt: mins(200)})
	}
	all = append(all, "same-a", "same-b", "same-c")
	slices.Reverse(all)

	if got := userIDs(t, s, store.UserFilter{}); !slices.Equal(got, all[:100]) {
		t.Errorf("ListUsers() = %d users %v…, want the newest 100", len(got), got[:min(4, len(got))])
	}
	if got := userIDs(t, s, store.UserFilter{Limit: 10, Offset: 100}); !slices.Equal(got, all[100:]) {
		t.Errorf("ListUsers(offset 100) = %v, want %v", got, all[100:])
	}
	if got := userIDs(t, s, store.UserFilter{Limit: 2, Offset: 1}); !slices.Equal(got, all[1:3]) {
		t.Errorf("ListUsers(limit 2, offset 1) = %v, want %v", got, all[1:3])
	}
	var acme []string
	for _, id := range all {
		var n int
		if _, err := fmt.Sscanf(id, "u%d", &n); err == nil && n%4 == 0 {
			acme = append(acme, id)
		}
	}
	for _, tc := range []struct {
		f    store.UserFilter
		want []string
	}{
		{store.UserFilter{TenantID: "acme", Limit: 1000}, acme},
		{store.UserFilter{Tier: "pro", Limit: 1000}, acme},
		{store.UserFilter{TenantID: "acme", Tier: "free"}, nil},
		{store.UserFilter{ExternalID: "ext-u007"}, []string{"u007"}},
		{store.UserFilter{ExternalID: "ext-u00"}, nil}, // exact
		{store.UserFilter{Email: "u010@example"}, []string{"u010"}},
		{store.UserFilter{Email: "EXAMPLE.COM", Limit: 1000}, all[3:]},
		{store.UserFilter{Search: "u10"}, []string{"u102", "u101", "u100"}},
		{store.UserFilter{Search: "ext-u099"}, []string{"u099"}},
		{store.UserFilter{Search: "u098@"}, []string{"u098"}},
		{store.UserFilter{Search: "same-"}, []string{"same-c", "same-b", "same-a"}},
		{store.UserFilter{Search: "u10", TenantID: "acme"}, []string{"u100"}},
	} {
		if got := userIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListUsers(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	if err := s.DeleteUser(ctx(t), "same-c", mins(300)); err != nil {
		t.Fatal(err)
	}
	if got := userIDs(t, s, store.UserFilter{Search: "same-"}); !slices.Equal(got, []string{"same-b", "same-a"}) {
		t.Errorf("ListUsers after a deletion = %v, want [same-b same-a]", got)
	}
	if got := userIDs(t, s, store.UserFilter{Search: "same-", IncludeDeleted: true}); !slices.Equal(got, []string{"same-c", "same-b", "same-a"}) {
		t.Errorf("ListUsers(include deleted) = %v, want [same-c same-b same-a]", got)
	}
}

func testUpdateUser(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	mustCreateTenant(t, s, "other")
	mustCreateUser(t, s, store.User{ID: "u1", TenantID: "acme", Tier: "free", ExternalID: "e1",
		Email: "old@x.io", Metadata: map[string]string{"a": "1"}, CreatedAt: mins(0)})
	mustCreateUser(t, s, store.User{ID: "u2", TenantID: "acme", Tier: "free", ExternalID: "e2"})
	mustCreateUser(t, s, store.User{ID: "u3", TenantID: "other", Tier: "free", ExternalID: "e3"})

	// The tenant is not the update's to change.
	upd := store.User{ID: "u1", TenantID: "other", Tier: "pro", ExternalID: "e3", Email: "new@x.io",
		Metadata: map[string]string{"b": "2"}, UpdatedAt: ptr(mins(10))}
	if err := s.UpdateUser(c, upd); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	want := upd
	want.TenantID, want.CreatedAt = "acme", mins(0)
	assertUser(t, getUser(t, s, "u1"), want)

	err := s.UpdateUser(c, store.User{ID: "u1", Tier: "pro", ExternalID: "e2"})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateUser to an external id taken in the tenant: err = %v, want ErrConflict", err)
	}
	assertUser(t, getUser(t, s, "u1"), want) // unchanged

	before := time.Now().Add(-time.Second)
	if err := s.UpdateUser(c, store.User{ID: "u1", Tier: "free"}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	got := getUser(t, s, "u1")
	if got.ExternalID != "" || got.Email != "" || got.Metadata == nil || len(got.Metadata) != 0 ||
		got.UpdatedAt == nil || got.UpdatedAt.Before(before) {
		t.Errorf("after a bare UpdateUser: %+v, want empty fields and UpdatedAt now", got)
	}

	if err := s.UpdateUser(c, store.User{ID: "ghost", Tier: "pro"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(c, "u2", mins(20)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateUser(c, store.User{ID: "u2", Tier: "pro"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(deleted): err = %v, want ErrNotFound", err)
	}
	if got := getUser(t, s, "u2"); got.Tier != "free" || got.UpdatedAt != nil {
		t.Errorf("a refused update changed the deleted user: %+v", got)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateUser(t, s, store.User{ID: "u1", Tier: "pro"})
	mustCreateUser(t, s, store.User{ID: "u2", Tier: "pro"})
	mustCreateKey(t, s, store.APIKey{ID: "live", Name: "a", Prefix: "p", UserID: "u1"}, "h-live")
	mustCreateKey(t, s, store.APIKey{ID: "expired", Name: "b", Prefix: "p", UserID: "u1",
		ExpiresAt: ptr(mins(-10))}, "h-expired")
	mustCreateKey(t, s, store.APIKey{ID: "revoked", Name: "c", Prefix: "p", UserID: "u1"}, "h-revoked")
	mustCreateKey(t, s, store.APIKey{ID: "other", Name: "d", Prefix: "p", UserID: "u2"}, "h-other")
	if err := s.RevokeKey(c, "revoked", mins(1)); err != nil {
		t.Fatal(err)
	}

	at := mins(5)
	if err := s.DeleteUser(c, "u1", at); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if got := getUser(t, s, "u1"); got.DeletedAt == nil || !got.DeletedAt.Equal(at) {
		t.Errorf("DeletedAt = %v, want %v", got.DeletedAt, at)
	}
	for id, want := range map[string]*time.Time{"live": &at, "expired": &at, "revoked": ptr(mins(1)), "other": nil} {
		k, err := s.GetKey(c, id)
		if err != nil || !timePtrEqual(k.RevokedAt, want) {
			t.Errorf("key %s: RevokedAt = %v, %v; want %v", id, k.RevokedAt, err, want)
		}
	}
	if k, err := s.KeyBySecret(c, "h-live", mins(6)); err != nil || k.RevokedAt == nil {
		t.Errorf("KeyBySecret of a deleted user's key = %+v, %v; want it, revoked", k, err)
	}
	if err := s.DeleteUser(c, "u1", mins(9)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser: err = %v, want ErrNotFound", err)
	}
	if got := getUser(t, s, "u1"); !timePtrEqual(got.DeletedAt, &at) {
		t.Errorf("second DeleteUser moved DeletedAt to %v", got.DeletedAt)
	}
	if err := s.DeleteUser(c, "ghost", mins(9)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.CreateKey(c, store.APIKey{ID: "late", Name: "x", Prefix: "p", UserID: "u1"}, "h-late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateKey of a deleted user: err = %v, want ErrNotFound", err)
	}
	if got := userIDs(t, s, store.UserFilter{}); !slices.Equal(got, []string{"u2"}) {
		t.Errorf("ListUsers() = %v, want [u2]", got)
	}
}

// testSoftDeleteRaces: a user created while its tenant is deleted, or a key created while its user
// is deleted, never outlives the deletion: either the creation fails, or the deletion fails (the
// tenant) or revokes the new key (the user).
func testSoftDeleteRaces(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		tenant, user := fmt.Sprintf("t%d", i), fmt.Sprintf("u%d", i)
		mustCreateTenant(t, s, tenant)
		mustCreateUser(t, s, store.User{ID: user, Tier: "pro"})
		var createErr, deleteErr, keyErr, userDelErr error
		wg.Go(func() { createErr = s.CreateUser(c, store.User{ID: "new-" + user, TenantID: tenant, Tier: "pro"}) })
		wg.Go(func() { deleteErr = s.DeleteTenant(c, tenant, mins(i)) })
		wg.Go(func() {
			keyErr = s.CreateKey(c, store.APIKey{ID: "k" + user, Name: "k", Prefix: "p", UserID: user}, "h"+user)
		})
		wg.Go(func() { userDelErr = s.DeleteUser(c, user, mins(i)) })
		wg.Wait()
		if createErr == nil && deleteErr == nil {
			t.Errorf("round %d: a user joined tenant %s while it was deleted", i, tenant)
		}
		for _, err := range []error{createErr, deleteErr, keyErr, userDelErr} {
			if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
				t.Errorf("round %d: %v", i, err)
			}
		}
		if userDelErr != nil {
			t.Fatalf("round %d: DeleteUser: %v", i, userDelErr)
		}
		if keyErr == nil {
			if k, err := s.GetKey(c, "k"+user); err != nil || k.RevokedAt == nil {
				t.Errorf("round %d: key of deleted user %s = %+v, %v; want it revoked", i, user, k, err)
			}
		}
	}
}

func getTenant(t *testing.T, s store.Store, id string) store.Tenant {
	t.Helper()
	tn, err := s.GetTenant(ctx(t), id)
	if err != nil {
		t.Fatalf("GetTenant(%s): %v", id, err)
	}
	return tn
}

func getUser(t *testing.T, s store.Store, id string) store.User {
	t.Helper()
	u, err := s.GetUser(ctx(t), id)
	if err != nil {
		t.Fatalf("GetUser(%s): %v", id, err)
	}
	return u
}

func tenantIDs(t *testing.T, s store.Store, f store.TenantFilter) []string {
	t.Helper()
	ts, err := s.ListTenants(ctx(t), f)
	if err != nil {
		t.Fatalf("ListTenants(%+v): %v", f, err)
	}
	return idsOf(ts, func(tn store.Tenant) string { return tn.ID })
}

func userIDs(t *testing.T, s store.Store, f store.UserFilter) []string {
	t.Helper()
	us, err := s.ListUsers(ctx(t), f)
	if err != nil {
		t.Fatalf("ListUsers(%+v): %v", f, err)
	}
	return idsOf(us, func(u store.User) string { return u.ID })
}

func keyIDs(t *testing.T, s store.Store, f store.KeyFilter) []string {
	t.Helper()
	ks, err := s.ListKeys(ctx(t), f)
	if err != nil {
		t.Fatalf("ListKeys(%+v): %v", f, err)
	}
	return idsOf(ks, func(k store.APIKey) string { return k.ID })
}

// idsOf returns the ids of a listing in its order; nil when it is empty, so an empty listing
// compares equal to a nil want.
func idsOf[T any](vs []T, id func(T) string) []string {
	var out []string
	for _, v := range vs {
		out = append(out, id(v))
	}
	return out
}

// metaEqual compares metadata, nil and empty alike.
func metaEqual(a, b map[string]string) bool { return maps.Equal(a, b) }

func assertTenant(t *testing.T, got, want store.Tenant) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || !slices.Equal(got.Models, want.Models) ||
		(len(want.Models) == 0) != (got.Models == nil) || got.Metadata == nil ||
		!metaEqual(got.Metadata, want.Metadata) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!timePtrEqual(got.UpdatedAt, want.UpdatedAt) || !timePtrEqual(got.DeletedAt, want.DeletedAt) {
		t.Errorf("tenant = %+v\nwant     %+v", got, want)
	}
}

func assertUser(t *testing.T, got, want store.User) {
	t.Helper()
	if got.ID != want.ID || got.TenantID != want.TenantID || got.Tier != want.Tier ||
		got.ExternalID != want.ExternalID || got.Email != want.Email || got.Metadata == nil ||
		!metaEqual(got.Metadata, want.Metadata) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!timePtrEqual(got.UpdatedAt, want.UpdatedAt) || !timePtrEqual(got.DeletedAt, want.DeletedAt) {
		t.Errorf("user = %+v\nwant   %+v", got, want)
	}
}

// testResponseCacheFlags: the response cache opt-in of a tenant and of a key round-trips, and a
// key read for authentication carries both.
func testResponseCacheFlags(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateTenant(c, store.Tenant{ID: "acme", Name: "Acme", ResponseCache: true, CreatedAt: mins(0)}); err != nil {
		t.Fatal(err)
	}
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "k1", Prefix: "p", TenantID: "acme"}, "h1")
	if k, err := s.KeyBySecret(c, "h1", mins(1)); err != nil || k.ResponseCache || !k.TenantResponseCache {
		t.Fatalf("KeyBySecret: key %v tenant %v (%v); want false, true", k.ResponseCache, k.TenantResponseCache, err)
	}
	if !getTenant(t, s, "acme").ResponseCache {
		t.Error("GetTenant lost response_cache")
	}
	if err := s.UpdateTenant(c, store.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	k, err := s.GetKey(c, "k1")
	if err != nil {
		t.Fatal(err)
	}
	k.ResponseCache = true
	if err := s.UpdateKey(c, k); err != nil {
		t.Fatal(err)
	}
	if k, err := s.KeyBySecret(c, "h1", mins(2)); err != nil || !k.ResponseCache || k.TenantResponseCache {
		t.Fatalf("after updates: key %v tenant %v (%v); want true, false", k.ResponseCache, k.TenantResponseCache, err)
	}
	mustCreateKey(t, s, store.APIKey{ID: "k2", Name: "k2", Prefix: "q", TenantID: "acme", ResponseCache: true}, "h2")
	if k, _ := s.GetKey(c, "k2"); !k.ResponseCache {
		t.Error("CreateKey lost response_cache")
	}
}
