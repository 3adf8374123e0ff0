package storetest

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// The admin API's side of keys: metadata, the tenant's allowlist, filters by name, prefix and
// status, updates and rotation with a grace period.

func testKeyAdminFields(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateTenant(c, store.Tenant{ID: "acme", Name: "Acme", Models: []string{"gpt-4o", "o3"}}); err != nil {
		t.Fatal(err)
	}
	want := store.APIKey{ID: "k1", Name: "ci", Prefix: "sk-lg-AbCd", TenantID: "acme",
		Models: []string{"gpt-4o"}, Metadata: map[string]string{"owner": "ci", "env": "prod"},
		CreatedAt: mins(0), TenantModels: []string{"gpt-4o", "o3"}}
	mustCreateKey(t, s, want, "h1")
	mustCreateKey(t, s, store.APIKey{ID: "k2", Name: "plain", Prefix: "p", CreatedAt: mins(1)}, "h2")

	bySecret, err := s.KeyBySecret(c, "h1", mins(1))
	if err != nil {
		t.Fatalf("KeyBySecret: %v", err)
	}
	assertAdminKey(t, "KeyBySecret", bySecret, want)
	byID, err := s.GetKey(c, "k1")
	if err != nil {
		t.Fatalf("GetKey: %v", err)
	}
	assertAdminKey(t, "GetKey", byID, want)
	keys, err := s.ListKeys(c, store.KeyFilter{})
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %+v, %v; want 2 keys", keys, err)
	}
	assertAdminKey(t, "ListKeys", keys[1], want)
	if k := keys[0]; k.ID != "k2" || k.TenantModels != nil || k.Metadata == nil || len(k.Metadata) != 0 ||
		k.UpdatedAt != nil {
		t.Errorf("key of the default tenant = %+v, want every tenant model, empty metadata, no UpdatedAt", k)
	}
}

func testListKeysFilters(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	now := mins(100)
	for i, k := range []store.APIKey{
		{ID: "active", Name: "Prod API", Prefix: "sk-lg-AbCd"},
		{ID: "expiring", Name: "staging api", Prefix: "sk-lg-AbXy", ExpiresAt: ptr(mins(150))},
		{ID: "expired", Name: "old", Prefix: "sk-lg-Zz", ExpiresAt: ptr(mins(50)), TenantID: "acme"},
		{ID: "revoked", Name: "leaked", Prefix: "sk-lg-Qq", TenantID: "acme"},
		{ID: "revoked-expired", Name: "both", Prefix: "sk-lg-Rr", ExpiresAt: ptr(mins(50))},
		{ID: "at-now", Name: "edge", Prefix: "sk-lg-Ee", ExpiresAt: ptr(now)},
	} {
		k.CreatedAt = mins(i)
		mustCreateKey(t, s, k, "h-"+k.ID)
	}
	for _, id := range []string{"revoked", "revoked-expired"} {
		if err := s.RevokeKey(c, id, mins(60)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    store.KeyFilter
		want []string
	}{
		{store.KeyFilter{Name: "API"}, []string{"expiring", "active"}},
		{store.KeyFilter{Name: "prod"}, []string{"active"}},
		{store.KeyFilter{Prefix: "sk-lg-Ab"}, []string{"expiring", "active"}},
		{store.KeyFilter{Prefix: "lg-Ab"}, nil}, // the start only
		{store.KeyFilter{Status: store.KeyActive, Now: now}, []string{"expiring", "active"}},
		{store.KeyFilter{Status: store.KeyExpired, Now: now}, []string{"at-now", "expired"}},
		{store.KeyFilter{Status: store.KeyRevoked, Now: now}, []string{"revoked-expired", "revoked"}},
		{store.KeyFilter{Status: store.KeyActive, Now: mins(10)}, []string{"at-now", "expired", "expiring", "active"}},
		{store.KeyFilter{Status: store.KeyExpired, Now: mins(200)}, []string{"at-now", "expired", "expiring"}},
		// Zero Now: judged now, long after every expiry above.
		{store.KeyFilter{Status: store.KeyActive}, []string{"active"}},
		{store.KeyFilter{Status: store.KeyExpired, TenantID: "acme"}, []string{"expired"}},
		{store.KeyFilter{Status: store.KeyActive, Name: "staging", Prefix: "sk-lg-Ab", Now: now}, []string{"expiring"}},
		{store.KeyFilter{Status: store.KeyActive, Limit: 1, Offset: 1, Now: now}, []string{"active"}},
	} {
		if got := keyIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListKeys(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	if _, err := s.ListKeys(c, store.KeyFilter{Status: "sleeping"}); err == nil {
		t.Error("ListKeys(status sleeping): no error")
	}
}

func testUpdateKey(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateUser(t, s, store.User{ID: "u1", Tier: "pro"})
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "old", Prefix: "sk-1", UserID: "u1",
		Models: []string{"a"}, Metadata: map[string]string{"x": "1"}, CreatedAt: mins(0)}, "h1")

	upd := store.APIKey{ID: "k1", Name: "new", Prefix: "ignored", UserID: "ignored", TenantID: "ignored",
		Models: []string{"b", "c"}, ExpiresAt: ptr(mins(500)), Metadata: map[string]string{"y": "2"},
		UpdatedAt: ptr(mins(5))}
	if err := s.UpdateKey(c, upd); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	want := store.APIKey{ID: "k1", Name: "new", Prefix: "sk-1", UserID: "u1", TenantID: store.DefaultTenant,
		Models: []string{"b", "c"}, ExpiresAt: ptr(mins(500)), Metadata: map[string]string{"y": "2"},
		CreatedAt: mins(0), UpdatedAt: ptr(mins(5))}
	got, err := s.KeyBySecret(c, "h1", mins(6))
	if err != nil {
		t.Fatalf("KeyBySecret: %v", err)
	}
	assertAdminKey(t, "after UpdateKey", got, want)

	// Empty fields replace: every model, no expiry, no metadata; UpdatedAt now.
	before := time.Now().Add(-time.Second)
	if err := s.UpdateKey(c, store.APIKey{ID: "k1", Name: "bare"}); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	got, _ = s.GetKey(c, "k1")
	if got.Name != "bare" || got.Models != nil || got.ExpiresAt != nil || len(got.Metadata) != 0 ||
		got.UpdatedAt == nil || got.UpdatedAt.Before(before) {
		t.Errorf("after a bare UpdateKey: %+v", got)
	}

	if err := s.UpdateKey(c, store.APIKey{ID: "ghost", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateKey(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.RevokeKey(c, "k1", mins(7)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateKey(c, store.APIKey{ID: "k1", Name: "revived"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateKey(revoked): err = %v, want ErrNotFound", err)
	}
	if got, _ := s.GetKey(c, "k1"); got.Name != "bare" {
		t.Errorf("a refused update renamed the revoked key to %q", got.Name)
	}
}

func testRotateKey(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "k", Prefix: "sk-old", CreatedAt: mins(0)}, "h1")
	mustCreateKey(t, s, store.APIKey{ID: "k2", Name: "k", Prefix: "sk-two", CreatedAt: mins(0)}, "h-two")
	live := func(hash string, at time.Time) bool {
		t.Helper()
		k, err := s.KeyBySecret(c, hash, at)
		if errors.Is(err, store.ErrNotFound) {
			return false
		}
		if err != nil || k.ID != "k1" {
			t.Fatalf("KeyBySecret(%s, %v) = %+v, %v", hash, at, k, err)
		}
		return true
	}
	expect := func(step string, at time.Time, want map[string]bool) {
		t.Helper()
		for _, hash := range slices.Sorted(maps.Keys(want)) {
			if got := live(hash, at); got != want[hash] {
				t.Errorf("%s: secret %s live at %v = %v, want %v", step, hash, at, got, want[hash])
			}
		}
	}

	// Rotate at 10 with an hour of grace: both secrets work until 70, only the new one after.
	if err := s.RotateKey(c, "k1", "h2", "sk-new", mins(10), mins(70)); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	expect("first rotation", mins(30), map[string]bool{"h1": true, "h2": true})
	expect("first rotation", mins(69), map[string]bool{"h1": true, "h2": true})
	expect("first rotation", mins(70), map[string]bool{"h1": false, "h2": true})
	expect("first rotation", mins(100000), map[string]bool{"h1": false, "h2": true})
	k, _ := s.GetKey(c, "k1")
	if k.Prefix != "sk-new" || !timePtrEqual(k.UpdatedAt, ptr(mins(10))) {
		t.Errorf("after RotateKey: prefix %q, UpdatedAt %v; want sk-new, %v", k.Prefix, k.UpdatedAt, mins(10))
	}

	// A second rotation with a longer grace keeps h1's earlier end; h2 gets the new grace.
	if err := s.RotateKey(c, "k1", "h3", "sk-3", mins(20), mins(24*60)); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	expect("second rotation", mins(30), map[string]bool{"h1": true, "h2": true, "h3": true})
	expect("second rotation", mins(70), map[string]bool{"h1": false, "h2": true, "h3": true})
	expect("second rotation", mins(24*60), map[string]bool{"h1": false, "h2": false, "h3": true})

	// Zero grace: the old secrets stop at once. h1, expired already, stays so.
	if err := s.RotateKey(c, "k1", "h4", "sk-4", mins(100), mins(100)); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	expect("zero grace", mins(100), map[string]bool{"h1": false, "h2": false, "h3": false, "h4": true})
	expect("zero grace", mins(99), map[string]bool{"h1": false, "h2": true, "h3": true, "h4": true})

	// A hash in use (this key's or another's) is a conflict and changes nothing.
	for _, hash := range []string{"h4", "h-two"} {
		if err := s.RotateKey(c, "k1", hash, "sk-bad", mins(200), mins(210)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("RotateKey to hash %s in use: err = %v, want ErrConflict", hash, err)
		}
	}
	expect("refused rotation", mins(100000), map[string]bool{"h4": true})
	if k, _ := s.GetKey(c, "k1"); k.Prefix != "sk-4" {
		t.Errorf("a refused rotation set the prefix to %q", k.Prefix)
	}

	if err := s.RotateKey(c, "ghost", "h9", "p", mins(300), mins(310)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RotateKey(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.RevokeKey(c, "k1", mins(300)); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(c, "k1", "h9", "p", mins(301), mins(310)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RotateKey(revoked): err = %v, want ErrNotFound", err)
	}
	if _, err := s.KeyBySecret(c, "h9", mins(302)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused rotation's secret is live: %v", err)
	}
}

// assertAdminKey compares everything assertKey does and the admin fields.
func assertAdminKey(t *testing.T, what string, got, want store.APIKey) {
	t.Helper()
	assertKey(t, got, want)
	if got.Metadata == nil || !metaEqual(got.Metadata, want.Metadata) ||
		!timePtrEqual(got.UpdatedAt, want.UpdatedAt) || !slices.Equal(got.TenantModels, want.TenantModels) ||
		(len(want.TenantModels) == 0) != (got.TenantModels == nil) {
		t.Errorf("%s: metadata %v, UpdatedAt %v, TenantModels %#v; want %v, %v, %#v", what,
			got.Metadata, got.UpdatedAt, got.TenantModels, want.Metadata, want.UpdatedAt, want.TenantModels)
	}
}
