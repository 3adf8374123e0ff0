package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/migrations"
	"github.com/llmgate/llmgate/store/storetest"
)

// Close must release every goroutine the store started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	// Money columns are INTEGER here: sums beyond int64 pico-USD must fail cleanly (rollup.go).
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "llmgate.db"))
	}, storetest.Int64Money())
}

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := New(context.Background(), path)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openMigrated is a migrated store on a file of its own, closed when the test ends.
func openMigrated(t testing.TB) *Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "llmgate.db"))
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoresSharingOneFile: several stores on one file (processes sharing a data dir) migrate and
// write at once without SQLITE_BUSY, and together keep every record exactly once.
func TestStoresSharingOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	ctx := context.Background()
	stores := make([]*Store, 3)
	for i := range stores {
		stores[i] = open(t, path)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]store.UsageRecord, 300)
	for i := range recs {
		at := start.Add(time.Duration(i) * time.Second)
		recs[i] = store.UsageRecord{RequestID: fmt.Sprintf("r%d", i), Status: 200, StartedAt: at, EndedAt: at}
	}
	inserted := make([]int, 2*len(stores))
	errs = make([]error, len(inserted))
	for i := range inserted {
		s := stores[i%len(stores)]
		wg.Go(func() {
			// Overlapping batches: each writer's first half is another's second half.
			from := (i * 50) % 250
			inserted[i], errs[i] = s.InsertUsage(ctx, recs[from:from+100])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent InsertUsage: %v", err)
	}
	total := 0
	for _, n := range inserted {
		total += n
	}
	got, err := stores[0].ListUsage(ctx, store.UsageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if total != len(got) || len(got) != 300 {
		t.Errorf("writers reported %d new rows, table has %d, want 300 both", total, len(got))
	}
	var mode string
	if err := stores[1].r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestQuotaPolicyModelNull: the every-model policy is stored with model NULL, never the empty
// string, so "every model" has one representation in the table.
func TestQuotaPolicyModelNull(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	for _, model := range []string{"", "gpt-4o", ""} {
		if err := s.PutQuotaPolicy(ctx, store.QuotaPolicy{SubjectType: "user", SubjectID: "u1", Model: model}); err != nil {
			t.Fatalf("PutQuotaPolicy(%q): %v", model, err)
		}
	}
	var nulls, empties, rows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE model IS NULL),
		count(*) FILTER (WHERE model = ''), count(*) FROM quota_policies`).Scan(&nulls, &empties, &rows); err != nil {
		t.Fatal(err)
	}
	if nulls != 1 || empties != 0 || rows != 2 {
		t.Errorf("%d rows, %d with model NULL and %d with model '', want 2, 1 and 0", rows, nulls, empties)
	}
}

// TestMoneyExactAtInt64Min: SQLite computes an integer sum that overflows as a REAL; pushed a
// little below the int64 minimum, that REAL is exactly −2⁶³, which an INTEGER could hold. The
// STRICT money columns must still refuse it, or a balance or rollup cost would be stored as the
// minimum, silently wrong; this pins that the refusal holds at the boundary.
func TestMoneyExactAtInt64Min(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	a, err := s.EnsureCreditAccount(ctx, "user", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCredit(ctx, a.ID, "adjust", big.NewInt(-math.MaxInt64), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCredit(ctx, a.ID, "adjust", big.NewInt(-2), ""); !errors.Is(err, errMoneyRange) {
		t.Errorf("balance below int64: err = %v, want errMoneyRange", err)
	}
	if got, err := s.CreditAccountOf(ctx, "user", "u1"); err != nil || got.BalancePicoUSD.Cmp(big.NewInt(-math.MaxInt64)) != 0 {
		t.Errorf("balance = %v, %v; want −(2⁶³−1), unchanged", got.BalancePicoUSD, err)
	}

	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(id string, cost int64) []store.UsageRecord {
		return []store.UsageRecord{{RequestID: id, Status: 200, Deployment: "up/m", CostPicoUSD: &cost, StartedAt: at, EndedAt: at}}
	}
	if _, err := s.InsertUsage(ctx, rec("r1", -math.MaxInt64)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertUsage(ctx, rec("r2", -2)); !errors.Is(err, errMoneyRange) {
		t.Errorf("rollup cost below int64: err = %v, want errMoneyRange", err)
	}
	if n, err := s.InsertUsage(ctx, append(rec("r3", -1), rec("r4", -1)...)); !errors.Is(err, errMoneyRange) || n != 0 {
		t.Errorf("rollup cost below int64 within one batch: %d, %v; want errMoneyRange", n, err)
	}
	us, err := s.BillingRecords(ctx, store.BillingFilter{})
	if err != nil || len(us) != 1 || us[0].Requests != 1 || us[0].CostPicoUSD.Cmp(big.NewInt(-math.MaxInt64)) != 0 {
		t.Errorf("rollups = %+v, %v; want r1's alone", us, err)
	}
}

// TestChargedTotalAtInt64Min: charges of one batch to one account that sum to exactly 2⁶³ fit
// the batch's int64 sum of balance moves (−2⁶³), but not the account's total of charges (+2⁶³):
// the batch fails and changes nothing, rather than adding −2⁶³ to the total.
func TestChargedTotalAtInt64Min(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	a, err := s.EnsureCreditAccount(ctx, "user", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCredit(ctx, a.ID, "grant", big.NewInt(math.MaxInt64), ""); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	half := int64(1) << 62
	recs := []store.UsageRecord{
		{RequestID: "r1", UserID: "u1", Status: 200, CostPicoUSD: &half, Charge: true, PayerType: "user", PayerID: "u1", StartedAt: at, EndedAt: at},
		{RequestID: "r2", UserID: "u1", Status: 200, CostPicoUSD: &half, Charge: true, PayerType: "user", PayerID: "u1", StartedAt: at.AddDate(0, 0, 1), EndedAt: at},
	}
	if n, err := s.InsertUsage(ctx, recs); !errors.Is(err, errMoneyRange) || n != 0 {
		t.Errorf("InsertUsage = %d, %v; want errMoneyRange", n, err)
	}
	got, err := s.CreditAccountOf(ctx, "user", "u1")
	if err != nil || got.BalancePicoUSD.Cmp(big.NewInt(math.MaxInt64)) != 0 || got.ChargedPicoUSD.Sign() != 0 {
		t.Errorf("account = %+v, %v; want the grant's balance and no charges", got, err)
	}
	if recs, err := s.ListUsage(ctx, store.UsageFilter{}); err != nil || len(recs) != 0 {
		t.Errorf("usage rows = %d, %v; want none", len(recs), err)
	}
}

// TestMigrationBackfillsCharged: on a database at version 1 that holds credit entries, migration
// 0002 sets each account's total of charges to the sum of its charge entries (grants, refunds
// and adjustments aside) and leaves balances alone.
func TestMigrationBackfillsCharged(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "llmgate.db"))
	ms, err := migrations.SQLite()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.migrate(ctx, ms[:1]); err != nil { // Migrate stopped after version 1
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `
		INSERT INTO credit_accounts (id, subject_type, subject_id, balance_pico_usd) VALUES
			('ca_1', 'user', 'u1', 1000 - 100 - 23 - 5), ('ca_2', 'tenant', 'acme', 50 - 7),
			('ca_3', 'user', 'u2', 0);
		INSERT INTO credit_ledger (account_id, kind, amount_pico_usd, request_id) VALUES
			('ca_1', 'grant', 1000, NULL), ('ca_1', 'charge', -100, 'r1'), ('ca_1', 'charge', -23, 'r2'),
			('ca_1', 'adjust', -5, NULL), ('ca_2', 'charge', -7, 'r3'), ('ca_2', 'refund', 50, NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from version 1: %v", err)
	}
	for _, want := range []struct {
		typ, id          string
		balance, charged int64
	}{{"user", "u1", 872, 123}, {"tenant", "acme", 43, 7}, {"user", "u2", 0, 0}} {
		a, err := s.CreditAccountOf(ctx, want.typ, want.id)
		if err != nil {
			t.Fatal(err)
		}
		if a.BalancePicoUSD.Cmp(big.NewInt(want.balance)) != 0 || a.ChargedPicoUSD.Cmp(big.NewInt(want.charged)) != 0 {
			t.Errorf("%s %s: balance %v, charged %v; want %d, %d", want.typ, want.id, a.BalancePicoUSD,
				a.ChargedPicoUSD, want.balance, want.charged)
		}
	}
}

// TestCreditAccountsKept: accounts cannot be deleted or renumbered, as in PostgreSQL.
func TestCreditAccountsKept(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	a, err := s.EnsureCreditAccount(ctx, "user", "u1")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM credit_accounts`, `UPDATE credit_accounts SET id = 'ca_other'`} {
		if _, err := s.w.ExecContext(ctx, q); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	if got, err := s.CreditAccountOf(ctx, "user", "u1"); err != nil || got.ID != a.ID {
		t.Errorf("account after the refused writes = %+v, %v; want %s", got, err, a.ID)
	}
}
