// Package storetest is the conformance suite every store.Store implementation must pass, run
// against the real database (SQLite file, PostgreSQL server) by each implementation's tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// Option adapts the suite to a store's documented limits.
type Option func(*config)

type config struct {
	int64Money bool
}

// Int64Money declares that the store keeps money sums (a rollup row's cost, a balance, an
// account's total of charges, a credit amount) in int64 pico-USD, as the embedded SQLite store
// does: a write that would take one beyond that range must then fail and change nothing. Without
// it, such sums must be exact (NUMERIC in PostgreSQL).
func Int64Money() Option { return func(c *config) { c.int64Money = true } }

// Run runs the suite. newStore must return a store on an empty database of its own, not yet
// migrated, and close it when t ends (t.Cleanup). Subtests run in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	open := func(t *testing.T) store.Store {
		t.Helper()
		s := newStore(t)
		if err := s.Migrate(ctx(t)); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Tenants", testTenants},
		{"Users", testUsers},
		{"KeyBySecret", testKeyBySecret},
		{"KeyModels", testKeyModels},
		{"KeyConflicts", testKeyConflicts},
		{"RevokeKey", testRevokeKey},
		{"ExpiredKey", testExpiredKey},
		{"ListKeys", testListKeys},
		{"InsertUsageIdempotent", testInsertUsageIdempotent},
		{"InsertUsageLargeBatch", testInsertUsageLargeBatch},
		{"UsageRoundTrip", testUsageRoundTrip},
		{"ListUsageFilters", testListUsageFilters},
		{"ListUsagePaging", testListUsagePaging},
		{"ListUsageKeyset", testListUsageKeyset},
		{"UsageStats", testUsageStats},
		{"ListCreditAccounts", testListCreditAccounts},
		{"MetacharactersInValues", testMetacharacters},
		{"QuotaPolicyUpsert", testQuotaPolicyUpsert},
		{"QuotaPolicyModels", testQuotaPolicyModels},
		{"QuotaPolicyList", testQuotaPolicyList},
		{"QuotaPolicyLimits", testQuotaPolicyLimits},
		{"QuotaPolicyBudgets", testQuotaPolicyBudgets},
		{"QuotaPolicyDelete", testQuotaPolicyDelete},
		{"QuotaPolicyMetacharacters", testQuotaPolicyMetacharacters},
		{"QuotaPolicyUpdatedAt", testQuotaPolicyUpdatedAt},
		{"QuotaPolicyConcurrentPut", testQuotaPolicyConcurrentPut},
		{"BillingRollups", testBillingRollups},
		{"BillingOnlyReachedModels", testBillingOnlyReachedModels},
		{"BillingUnpriced", testBillingUnpriced},
		{"BillingReplay", testBillingReplay},
		{"BillingConcurrentOverlap", testBillingConcurrentOverlap},
		{"Spend", testSpend},
		{"Charges", testCharges},
		{"ChargeOncePerRequest", testChargeOncePerRequest},
		{"ChargedTotal", testChargedTotal},
		{"BigMoney", func(t *testing.T, s store.Store) { testBigMoney(t, s, cfg) }},
		{"Prices", testPrices},
		{"PriceConflict", testPriceConflict},
		{"CreditAccounts", testCreditAccounts},
		{"CreditAccountConcurrentEnsure", testCreditAccountConcurrentEnsure},
		{"AddCredit", testAddCredit},
		{"CreditHistory", testCreditHistory},
		{"TenantFields", testTenantFields},
		{"ListTenants", testListTenants},
		{"LikeEscaping", testLikeEscaping},
		{"UpdateTenant", testUpdateTenant},
		{"ResponseCacheFlags", testResponseCacheFlags},
		{"DeleteTenant", testDeleteTenant},
		{"UserFields", testUserFields},
		{"ListUsers", testListUsers},
		{"UpdateUser", testUpdateUser},
		{"DeleteUser", testDeleteUser},
		{"SoftDeleteRaces", testSoftDeleteRaces},
		{"KeyAdminFields", testKeyAdminFields},
		{"ListKeysFilters", testListKeysFilters},
		{"UpdateKey", testUpdateKey},
		{"RotateKey", testRotateKey},
		{"AdminTokens", testAdminTokens},
		{"ListAdminTokens", testListAdminTokens},
		{"AdminAudit", testAdminAudit},
		{"DeploymentOverrides", testDeploymentOverrides},
		{"Catalog", testCatalog},
		{"AdminMetacharacters", testAdminMetacharacters},
		{"ResponseRoutes", testResponseRoutes},
		{"ResponseRoutesBatch", testResponseRoutesBatch},
		{"AlertThresholds", testAlertThresholds},
		{"AlertWebhooks", testAlertWebhooks},
		{"AlertEvents", testAlertEvents},
		{"AlertDeliveries", testAlertDeliveries},
		{"ConsoleSessions", testConsoleSessions},
		{"Experiments", testExperiments},
		{"ExperimentResults", testExperimentResults},
	}
	t.Run("Migrate", func(t *testing.T) {
		t.Parallel()
		testMigrate(t, newStore(t))
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// testMigrate: a fresh store migrates, migrating again changes nothing, and several goroutines
// migrating at once (replicas starting together) all succeed.
func testMigrate(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.Ping(c); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(c) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	mustCreateUser(t, s, store.User{ID: "u1", Tier: "pro"})
	if err := s.Migrate(c); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if _, err := s.GetUser(c, "u1"); err != nil {
		t.Fatalf("GetUser after second Migrate: %v (Migrate must not touch data)", err)
	}
	tn, err := s.GetTenant(c, store.DefaultTenant)
	if err != nil {
		t.Fatalf("the first migration must create the default tenant: %v", err)
	}
	if tn.ID != store.DefaultTenant {
		t.Errorf("default tenant id = %q", tn.ID)
	}
}

func testTenants(t *testing.T, s store.Store) {
	c := ctx(t)
	created := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 5*3600+1800))
	want := store.Tenant{ID: "acme", Name: "Acme Inc.", CreatedAt: created}
	if err := s.CreateTenant(c, want); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	got, err := s.GetTenant(c, "acme")
	if err != nil {
		t.Fatalf("GetTenant: %v", err)
	}
	if got.ID != want.ID || got.Name != want.Name || !got.CreatedAt.Equal(created.Truncate(time.Microsecond)) {
		t.Errorf("GetTenant = %+v, want %+v (time to the microsecond)", got, want)
	}
	if err := s.CreateTenant(c, store.Tenant{ID: "acme", Name: "other"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate CreateTenant: err = %v, want ErrConflict", err)
	}
	if _, err := s.GetTenant(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTenant(unknown): err = %v, want ErrNotFound", err)
	}
}

func testUsers(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	created := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	want := store.User{ID: "u1", TenantID: "acme", Tier: "enterprise", ExternalID: "ext-1",
		Email: "a@example.com", CreatedAt: created}
	mustCreateUser(t, s, want)
	got, err := s.GetUser(c, "u1")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if !got.CreatedAt.Equal(created.Truncate(time.Microsecond)) {
		t.Errorf("CreatedAt = %v, want %v to the microsecond", got.CreatedAt, created)
	}
	if got.Metadata == nil || len(got.Metadata) != 0 || got.UpdatedAt != nil || got.DeletedAt != nil {
		t.Errorf("GetUser: Metadata %#v, UpdatedAt %v, DeletedAt %v; want an empty map and no times",
			got.Metadata, got.UpdatedAt, got.DeletedAt)
	}
	got.CreatedAt, got.Metadata = want.CreatedAt, want.Metadata
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetUser = %+v, want %+v", got, want)
	}

	mustCreateUser(t, s, store.User{ID: "u2", Tier: "free"})
	got, err = s.GetUser(c, "u2")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.TenantID != store.DefaultTenant || got.CreatedAt.IsZero() {
		t.Errorf("user without tenant/created_at = %+v, want the default tenant and a creation time", got)
	}
	if err := s.CreateUser(c, store.User{ID: "u1", Tier: "free"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate CreateUser: err = %v, want ErrConflict", err)
	}
	if _, err := s.GetUser(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.CreateUser(c, store.User{ID: "u3", TenantID: "ghost", Tier: "free"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateUser in an unknown tenant: err = %v, want ErrNotFound", err)
	}
}

func testKeyBySecret(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	mustCreateUser(t, s, store.User{ID: "u1", TenantID: "acme", Tier: "pro"})
	expires := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
	created := time.Date(2026, 5, 6, 7, 8, 9, 999999999, time.UTC)
	want := store.APIKey{ID: "k1", Name: "ci", Prefix: "sk-lg-AbCd", UserID: "u1",
		Models: []string{"gpt-4o", "claude-sonnet"}, ExpiresAt: &expires, CreatedAt: created}
	mustCreateKey(t, s, want, "hash-1")

	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	got, err := s.KeyBySecret(c, "hash-1", now)
	if err != nil {
		t.Fatalf("KeyBySecret: %v", err)
	}
	want.TenantID = "acme" // a key with a user and no tenant takes the user's tenant
	want.ExpiresAt = ptr(expires.Truncate(time.Microsecond))
	want.CreatedAt = created.Truncate(time.Microsecond)
	assertKey(t, got, want)
	byID, err := s.GetKey(c, "k1")
	if err != nil {
		t.Fatalf("GetKey: %v", err)
	}
	assertKey(t, byID, want)

	if _, err := s.KeyBySecret(c, "hash-unknown", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyBySecret(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetKey(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey(unknown): err = %v, want ErrNotFound", err)
	}

	// A key without a user is its own quota subject, in the default tenant unless told otherwise.
	mustCreateKey(t, s, store.APIKey{ID: "k2", Name: "svc", Prefix: "sk-lg-Xy"}, "hash-2")
	got, err = s.KeyBySecret(c, "hash-2", now)
	if err != nil {
		t.Fatalf("KeyBySecret: %v", err)
	}
	if got.UserID != "" || got.TenantID != store.DefaultTenant || got.ExpiresAt != nil ||
		got.RevokedAt != nil || got.CreatedAt.IsZero() {
		t.Errorf("key without user = %+v, want no user, default tenant, no expiry, a creation time", got)
	}
	mustCreateKey(t, s, store.APIKey{ID: "k3", Name: "t", Prefix: "p", TenantID: "acme"}, "hash-3")
	if got, err := s.GetKey(c, "k3"); err != nil || got.TenantID != "acme" {
		t.Errorf("GetKey(k3) = %+v, %v; want tenant acme", got, err)
	}
}

func testKeyModels(t *testing.T, s store.Store) {
	c := ctx(t)
	for i, models := range [][]string{nil, {}, {"only-one"}, {"a", "b", "c"}} {
		id := fmt.Sprintf("k%d", i)
		mustCreateKey(t, s, store.APIKey{ID: id, Name: id, Prefix: "p", Models: models}, "hash-"+id)
		got, err := s.GetKey(c, id)
		if err != nil {
			t.Fatalf("GetKey: %v", err)
		}
		want := models
		if len(want) == 0 {
			want = nil // empty and nil both mean every model; the store returns nil
		}
		if !slices.Equal(got.Models, want) || (want == nil) != (got.Models == nil) {
			t.Errorf("Models %#v round-tripped to %#v, want %#v", models, got.Models, want)
		}
	}
}

func testKeyConflicts(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "a", Prefix: "p"}, "hash-1")
	if err := s.CreateKey(c, store.APIKey{ID: "k1", Name: "b", Prefix: "p"}, "hash-other"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate key id: err = %v, want ErrConflict", err)
	}
	if err := s.CreateKey(c, store.APIKey{ID: "k2", Name: "b", Prefix: "p"}, "hash-1"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate secret hash: err = %v, want ErrConflict", err)
	}
	if err := s.CreateKey(c, store.APIKey{ID: "k3", Name: "c", Prefix: "p", UserID: "ghost"}, "hash-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key of an unknown user: err = %v, want ErrNotFound", err)
	}
	if err := s.CreateKey(c, store.APIKey{ID: "k4", Name: "d", Prefix: "p", TenantID: "ghost"}, "hash-4"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key of an unknown tenant: err = %v, want ErrNotFound", err)
	}
	// The key and its secret are written together: a rejected secret leaves no key behind.
	if _, err := s.GetKey(c, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey after a failed CreateKey: err = %v, want ErrNotFound", err)
	}
	if _, err := s.KeyBySecret(c, "hash-other", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("secret of a failed CreateKey is live: err = %v, want ErrNotFound", err)
	}
}

func testRevokeKey(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "a", Prefix: "p"}, "hash-1")
	at := time.Date(2026, 7, 1, 12, 0, 0, 555555555, time.UTC)
	if err := s.RevokeKey(c, "k1", at); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	got, err := s.KeyBySecret(c, "hash-1", at.Add(time.Hour))
	if err != nil {
		t.Fatalf("KeyBySecret of a revoked key: %v (revocation is reported in the key, not as an error)", err)
	}
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at)
	}
	if err := s.RevokeKey(c, "k1", at.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeKey: %v", err)
	}
	if got, _ := s.GetKey(c, "k1"); got.RevokedAt == nil || !got.RevokedAt.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("second revocation moved RevokedAt to %v, want the first %v", got.RevokedAt, at)
	}
	if err := s.RevokeKey(c, "nope", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeKey(unknown): err = %v, want ErrNotFound", err)
	}
}

func testExpiredKey(t *testing.T, s store.Store) {
	c := ctx(t)
	expired := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mustCreateKey(t, s, store.APIKey{ID: "k1", Name: "a", Prefix: "p", ExpiresAt: &expired}, "hash-1")
	got, err := s.KeyBySecret(c, "hash-1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("KeyBySecret of an expired key: %v (the caller decides from ExpiresAt)", err)
	}
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(expired) {
		t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, expired)
	}
}

func testListKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	mustCreateTenant(t, s, "acme")
	mustCreateUser(t, s, store.User{ID: "u1", TenantID: "acme", Tier: "pro"})
	mustCreateUser(t, s, store.User{ID: "u2", Tier: "free"})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []string // ids, oldest first
	for i := range 105 {
		id, user := fmt.Sprintf("k%03d", i), "u2"
		if i%3 == 0 {
			user = "u1"
		}
		mustCreateKey(t, s, store.APIKey{ID: id, Name: id, Prefix: "p", UserID: user,
			CreatedAt: base.Add(time.Duration(i) * time.Minute)}, "hash-"+id)
		all = append(all, id)
	}
	slices.Reverse(all) // newest first

	list := func(f store.KeyFilter) []string {
		t.Helper()
		keys, err := s.ListKeys(c, f)
		if err != nil {
			t.Fatalf("ListKeys(%+v): %v", f, err)
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		return ids
	}
	if got := list(store.KeyFilter{}); !slices.Equal(got, all[:100]) {
		t.Errorf("ListKeys() = %d keys %v…, want the newest 100", len(got), got[:min(3, len(got))])
	}
	if got := list(store.KeyFilter{Limit: 10, Offset: 100}); !slices.Equal(got, all[100:]) {
		t.Errorf("ListKeys(limit 10, offset 100) = %v, want %v", got, all[100:])
	}
	if got := list(store.KeyFilter{Limit: 3, Offset: 1}); !slices.Equal(got, all[1:4]) {
		t.Errorf("ListKeys(limit 3, offset 1) = %v, want %v", got, all[1:4])
	}
	var u1 []string
	for _, id := range all {
		var n int
		fmt.Sscanf(id, "k%d", &n)
		if n%3 == 0 {
			u1 = append(u1, id)
		}
	}
	if got := list(store.KeyFilter{UserID: "u1", Limit: 1000}); !slices.Equal(got, u1) {
		t.Errorf("ListKeys(user u1) = %v, want %v", got, u1)
	}
	if got := list(store.KeyFilter{TenantID: "acme", Limit: 1000}); !slices.Equal(got, u1) {
		t.Errorf("ListKeys(tenant acme) = %v, want the keys of u1 %v", got, u1)
	}
	if got := list(store.KeyFilter{TenantID: "acme", UserID: "u2"}); len(got) != 0 {
		t.Errorf("ListKeys(tenant acme, user u2) = %v, want none", got)
	}
}

func mustCreateTenant(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.CreateTenant(ctx(t), store.Tenant{ID: id, Name: id}); err != nil {
		t.Fatalf("CreateTenant(%s): %v", id, err)
	}
}

func mustCreateUser(t *testing.T, s store.Store, u store.User) {
	t.Helper()
	if err := s.CreateUser(ctx(t), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.ID, err)
	}
}

func mustCreateKey(t *testing.T, s store.Store, k store.APIKey, hash string) {
	t.Helper()
	if err := s.CreateKey(ctx(t), k, hash); err != nil {
		t.Fatalf("CreateKey(%s): %v", k.ID, err)
	}
}

func assertKey(t *testing.T, got, want store.APIKey) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Prefix != want.Prefix ||
		got.UserID != want.UserID || got.TenantID != want.TenantID ||
		!slices.Equal(got.Models, want.Models) || !timePtrEqual(got.ExpiresAt, want.ExpiresAt) ||
		!timePtrEqual(got.RevokedAt, want.RevokedAt) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("key = %+v\nwant  %+v", got, want)
	}
}

func timePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func ptr[T any](v T) *T { return &v }
