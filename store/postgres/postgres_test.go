package postgres

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/internal/testsvc"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/migrations"
	"github.com/llmgate/llmgate/store/storetest"
)

var pg *testsvc.PostgresServer

func TestMain(m *testing.M) {
	var stop func()
	pg, stop = testsvc.Postgres()
	code := m.Run()
	stop()
	// Close must release every goroutine the pool started.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pg.NewDatabase(t)) })
}

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConcurrentMigrate: replicas starting together, each with its own pool, migrate one fresh
// database once between them.
func TestConcurrentMigrate(t *testing.T) {
	dsn := pg.NewDatabase(t)
	ctx := context.Background()
	stores := make([]*Store, 4)
	for i := range stores {
		stores[i] = open(t, dsn)
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
	ms, err := migrations.Postgres()
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	if err := stores[0].pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", applied, len(ms))
	}
}

// TestPartitions: Migrate makes this month's partition and the next ones; a record beyond them
// lands in the DEFAULT partition and moves into its month's partition when a later Migrate makes
// it, still deduplicating afterwards.
func TestPartitions(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, month := range []string{"202611", "202612", "202701", "202702"} {
		if partitionOf(t, s, "usage_records_p"+month) == "" {
			t.Errorf("partition for %s missing after Migrate", month)
		}
	}

	later := time.Date(2027, 6, 3, 4, 5, 6, 0, time.UTC)
	rec := store.UsageRecord{RequestID: "r-later", Status: 200, StartedAt: later, EndedAt: later}
	if n, err := s.InsertUsage(ctx, []store.UsageRecord{rec}); err != nil || n != 1 {
		t.Fatalf("InsertUsage = %d, %v", n, err)
	}
	if got := rowPartition(t, s, "r-later"); got != "usage_records_default" {
		t.Fatalf("record beyond the partitions is in %q, want usage_records_default", got)
	}

	now = later
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate four months later: %v", err)
	}
	if got := rowPartition(t, s, "r-later"); got != "usage_records_p202706" {
		t.Errorf("record is in %q after its partition was made, want usage_records_p202706", got)
	}
	if n, err := s.InsertUsage(ctx, []store.UsageRecord{rec}); err != nil || n != 0 {
		t.Errorf("replaying the moved record: InsertUsage = %d, %v; want 0 new", n, err)
	}
}

func partitionOf(t *testing.T, s *Store, name string) string {
	t.Helper()
	var parent string
	err := s.pool.QueryRow(context.Background(), `SELECT COALESCE((SELECT inhparent::regclass::text
		FROM pg_inherits WHERE inhrelid = to_regclass($1)), '')`, name).Scan(&parent)
	if err != nil {
		t.Fatal(err)
	}
	return parent
}

func rowPartition(t *testing.T, s *Store, requestID string) string {
	t.Helper()
	var part string
	err := s.pool.QueryRow(context.Background(),
		`SELECT tableoid::regclass::text FROM usage_records WHERE request_id = $1`, requestID).Scan(&part)
	if err != nil {
		t.Fatal(err)
	}
	return part
}

// BenchmarkInsertUsage reports the rows per second of the batch path (the ledger needs 50,000):
// records of one user, key and model, priced, none charged, so one rollup row per batch.
func BenchmarkInsertUsage(b *testing.B) { benchInsertUsage(b, 0, false) }

// BenchmarkInsertUsageCharged is the batch path at its most expensive: every record charged to
// its user's credit account, so each batch of 5,000 also appends 5,000 ledger entries and moves
// one balance per user. The users, each with a credit account and a key of its own, take the
// records in turn, over 4 models: 50 users make 200 rollup rows a batch, 1,000 users 4,000.
// ids=seq names requests req-<batch>-<n> under one trace id, as the benchmark always did;
// ids=gateway gives each record a UUIDv7 request id and a random trace id, as the gateway does,
// which costs the trace index a random insert per record. The records are made outside the timer.
func BenchmarkInsertUsageCharged(b *testing.B) {
	for _, accounts := range []int{50, 1000} {
		for _, gatewayIDs := range []bool{false, true} {
			ids := map[bool]string{false: "seq", true: "gateway"}[gatewayIDs]
			b.Run(fmt.Sprintf("accounts=%d/ids=%s", accounts, ids), func(b *testing.B) {
				benchInsertUsage(b, accounts, gatewayIDs)
			})
		}
	}
}

// benchInsertUsage inserts b.N batches of 5,000 new records; accounts > 0 charges every record to
// one of that many users' accounts.
func benchInsertUsage(b *testing.B, accounts int, gatewayIDs bool) {
	const batch = 5000
	ctx := context.Background()
	s := open(b, pg.NewDatabase(b))
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	for u := range accounts {
		if _, err := s.EnsureCreditAccount(ctx, "user", fmt.Sprintf("u%d", u)); err != nil {
			b.Fatal(err)
		}
	}
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-flash"}
	start := time.Now().Add(-time.Hour)
	recs := make([]store.UsageRecord, batch)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for j := range recs {
			at := start.Add(time.Duration(i*batch+j) * time.Microsecond)
			recs[j] = store.UsageRecord{
				RequestID: fmt.Sprintf("req-%d-%d", i, j), TraceID: "trace", KeyID: "k1", UserID: "u1",
				TenantID: "default", Model: "gpt-4o", Endpoint: "chat/completions", Status: 200,
				PromptTokens: 100, CompletionTokens: 200, UsageSource: "provider",
				CostPicoUSD: new(int64), StartedAt: at, EndedAt: at.Add(time.Second),
			}
			r := &recs[j]
			if accounts > 0 {
				r.UserID, r.KeyID = fmt.Sprintf("u%d", j%accounts), fmt.Sprintf("k%d", j%accounts)
				r.Model = models[j/50%len(models)]
				r.CostPicoUSD, r.Charge = ptr(int64(1_234_567_890+j)), true
				r.PayerType, r.PayerID = "user", r.UserID
			}
			if gatewayIDs {
				trace := uuid.New()
				r.RequestID, r.TraceID = uuid.Must(uuid.NewV7()).String(), hex.EncodeToString(trace[:])
			}
		}
		b.StartTimer()
		if n, err := s.InsertUsage(ctx, recs); err != nil || n != batch {
			b.Fatalf("InsertUsage = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}

func ptr[T any](v T) *T { return &v }

// TestBatchUpdatesStayHOT: the rollup rows and account balances that every batch updates are
// updated in place (HOT: no new index entries, no bloat) even while another transaction's snapshot
// keeps the previous versions alive, as a second writer's running statement does: their pages
// keep room for two more versions of every row. The counts are PostgreSQL's own
// (pg_stat_user_tables), read on the store's only connection after forcing it to publish them.
func TestBatchUpdatesStayHOT(t *testing.T) {
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	single := dsn
	if strings.Contains(dsn, "://") {
		single += map[bool]string{false: "?", true: "&"}[strings.Contains(dsn, "?")] + "pool_max_conns=1"
	} else {
		single += " pool_max_conns=1"
	}
	s := open(t, single)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const users = 400
	for u := range users {
		if _, err := s.EnsureCreditAccount(ctx, "user", fmt.Sprintf("u%d", u)); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	batch := func(n int) {
		t.Helper()
		recs := make([]store.UsageRecord, users)
		for u := range recs {
			recs[u] = store.UsageRecord{RequestID: fmt.Sprintf("req-%d-%d", n, u), TenantID: "default",
				UserID: fmt.Sprintf("u%d", u), Model: "gpt-4o", Deployment: "up/gpt-4o", Status: 200,
				PromptTokens: 10, CostPicoUSD: ptr(int64(1000)), Charge: true, PayerType: "user",
				PayerID: fmt.Sprintf("u%d", u), StartedAt: at, EndedAt: at}
		}
		if got, err := s.InsertUsage(ctx, recs); err != nil || got != users {
			t.Fatalf("InsertUsage = %d, %v", got, err)
		}
	}
	updates := func() (all, hot int64) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(sum(n_tup_upd), 0)::bigint, COALESCE(sum(n_tup_hot_upd), 0)::bigint
			FROM pg_stat_user_tables WHERE relname IN ('billing_record', 'credit_accounts')`).Scan(&all, &hot); err != nil {
			t.Fatal(err)
		}
		return all, hot
	}
	batch(0) // the rollup rows are made; the accounts are updated for the first time
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM billing_record`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	all0, hot0 := updates()
	batch(1)
	batch(2)
	all, hot := updates()
	all, hot = all-all0, hot-hot0
	t.Logf("%d of %d updates HOT", hot, all)
	if all != 4*users || hot < all*9/10 {
		t.Errorf("%d of %d updates HOT; want %d updates (a rollup row and a balance per user and batch), at least 90%% HOT",
			hot, all, 4*users)
	}
}

// TestInsertUsageLooksUpEachAccountOnce: a batch charging many records to a few accounts reads
// each account's index a few times, not once or twice per record, and still charges every record
// exactly: one entry each, and each balance moved by the sum of its records' costs. The index
// scans are PostgreSQL's own count (pg_stat_user_indexes), read on the store's only connection
// after forcing it to publish its counters.
func TestInsertUsageLooksUpEachAccountOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pg.NewDatabase(t)
	if strings.Contains(dsn, "://") {
		dsn += map[bool]string{false: "?", true: "&"}[strings.Contains(dsn, "?")] + "pool_max_conns=1"
	} else {
		dsn += " pool_max_conns=1"
	}
	s := open(t, dsn)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const accounts, records = 3, 300
	for u := range accounts {
		if _, err := s.EnsureCreditAccount(ctx, "user", fmt.Sprintf("u%d", u)); err != nil {
			t.Fatal(err)
		}
	}
	scans := func() int64 {
		t.Helper()
		if _, err := s.pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes
			WHERE relname = 'credit_accounts'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	recs := make([]store.UsageRecord, records)
	want := make([]int64, accounts)
	for i := range recs {
		u := i % accounts
		recs[i] = store.UsageRecord{RequestID: fmt.Sprintf("req-%d", i), TenantID: "default",
			UserID: fmt.Sprintf("u%d", u), Model: "gpt-4o", Deployment: "up/gpt-4o", Status: 200,
			CostPicoUSD: ptr(int64(1000 + i)), Charge: true, PayerType: "user", PayerID: fmt.Sprintf("u%d", u),
			StartedAt: at, EndedAt: at}
		want[u] += int64(1000 + i)
	}
	before := scans()
	if n, err := s.InsertUsage(ctx, recs); err != nil || n != records {
		t.Fatalf("InsertUsage = %d, %v; want %d", n, err, records)
	}
	got := scans() - before
	t.Logf("%d scans of credit_accounts' indexes for the batch", got)
	if got > 4*accounts {
		t.Errorf("%d scans of credit_accounts' indexes for a batch of %d records charged to %d accounts; want at most %d",
			got, records, accounts, 4*accounts)
	}
	for u := range accounts {
		a, err := s.CreditAccountOf(ctx, "user", fmt.Sprintf("u%d", u))
		if err != nil {
			t.Fatal(err)
		}
		if a.BalancePicoUSD.Cmp(big.NewInt(-want[u])) != 0 || a.ChargedPicoUSD.Cmp(big.NewInt(want[u])) != 0 {
			t.Errorf("u%d: balance %v, charged %v; want -%d and %d", u, a.BalancePicoUSD, a.ChargedPicoUSD, want[u], want[u])
		}
	}
	var entries int
	if err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT request_id) FROM credit_ledger WHERE kind = 'charge'`).Scan(&entries); err != nil || entries != records {
		t.Errorf("%d charged requests, %v; want %d", entries, err, records)
	}
}

// TestQuotaPolicyModelNull: the every-model policy is stored with model NULL, never the empty
// string, so "every model" has one representation in the table.
func TestQuotaPolicyModelNull(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"", "gpt-4o", ""} {
		if err := s.PutQuotaPolicy(ctx, store.QuotaPolicy{SubjectType: "user", SubjectID: "u1", Model: model}); err != nil {
			t.Fatalf("PutQuotaPolicy(%q): %v", model, err)
		}
	}
	var nulls, empties, rows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE model IS NULL),
		count(*) FILTER (WHERE model = ''), count(*) FROM quota_policies`).Scan(&nulls, &empties, &rows); err != nil {
		t.Fatal(err)
	}
	if nulls != 1 || empties != 0 || rows != 2 {
		t.Errorf("%d rows, %d with model NULL and %d with model '', want 2, 1 and 0", rows, nulls, empties)
	}
}

// TestQuotaPoliciesByteOrder: QuotaPolicies orders in byte order, as SQLite does, even when the
// columns' collation (the database's default in production) sorts otherwise.
func TestQuotaPoliciesByteOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var icu bool
	if err := s.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')`).Scan(&icu); err != nil {
		t.Fatal(err)
	}
	if !icu {
		t.Skip("this PostgreSQL has no ICU collations")
	}
	if _, err := s.pool.Exec(ctx, `ALTER TABLE quota_policies
		ALTER COLUMN subject_type TYPE text COLLATE "und-x-icu",
		ALTER COLUMN subject_id TYPE text COLLATE "und-x-icu",
		ALTER COLUMN model TYPE text COLLATE "und-x-icu"`); err != nil {
		t.Fatal(err)
	}
	values := []string{"b", "B", "_x", "a", "A", "a b", "ab", "é", "z"}
	for _, v := range values {
		for _, p := range []store.QuotaPolicy{
			{SubjectType: v, SubjectID: "id"},
			{SubjectType: "user", SubjectID: v},
			{SubjectType: "user", SubjectID: "id", Model: v},
		} {
			if err := s.PutQuotaPolicy(ctx, p); err != nil {
				t.Fatalf("PutQuotaPolicy(%+v): %v", p, err)
			}
		}
	}
	ps, err := s.QuotaPolicies(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := make([][3]string, len(ps))
	for i, p := range ps {
		got[i] = [3]string{p.SubjectType, p.SubjectID, p.Model}
	}
	want := slices.Clone(got)
	slices.SortFunc(want, func(a, b [3]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]), strings.Compare(a[2], b[2]))
	})
	if !slices.Equal(got, want) {
		t.Errorf("QuotaPolicies() = %q\nwant byte order %q", got, want)
	}
	// The collation must sort otherwise, or this test proves nothing.
	var collated []string
	rows, err := s.pool.Query(ctx, `SELECT subject_id FROM quota_policies WHERE subject_type = 'user'
		AND model IS NULL ORDER BY subject_id`)
	if err != nil {
		t.Fatal(err)
	}
	if collated, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if slices.IsSorted(collated) {
		t.Fatalf("the ICU collation sorts %q in byte order too", collated)
	}
}

// TestMigrationBackfillsCharged: on a database at version 1 that holds credit entries, migration
// 0002 sets each account's total of charges to the sum of its charge entries (grants, refunds
// and adjustments aside) and leaves balances alone; later charges add to it.
func TestMigrationBackfillsCharged(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	ms, err := migrations.Postgres()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What Migrate does, stopped after version 1.
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY,
		name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, conn.Conn(), ms[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `
		INSERT INTO credit_accounts (id, subject_type, subject_id, balance_pico_usd) VALUES
			('ca_1', 'user', 'u1', 1000 - 100 - 23 - 5), ('ca_2', 'tenant', 'acme', 50 - 7),
			('ca_3', 'user', 'u2', 0);
		INSERT INTO credit_ledger (account_id, kind, amount_pico_usd, request_id) VALUES
			('ca_1', 'grant', 1000, NULL), ('ca_1', 'charge', -100, 'r1'), ('ca_1', 'charge', -23, 'r2'),
			('ca_1', 'adjust', -5, NULL), ('ca_2', 'charge', -7, 'r3'), ('ca_2', 'refund', 50, NULL),
			('ca_2', 'charge', -123456789012345678901234567890, 'r4')`); err != nil {
		t.Fatal(err)
	}
	conn.Release()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from version 1: %v", err)
	}
	huge, _ := new(big.Int).SetString("123456789012345678901234567897", 10)
	for _, want := range []struct {
		typ, id          string
		balance, charged *big.Int
	}{
		{"user", "u1", big.NewInt(872), big.NewInt(123)},
		{"tenant", "acme", big.NewInt(43), huge},
		{"user", "u2", big.NewInt(0), big.NewInt(0)},
	} {
		a, err := s.CreditAccountOf(ctx, want.typ, want.id)
		if err != nil {
			t.Fatal(err)
		}
		if a.BalancePicoUSD.Cmp(want.balance) != 0 || a.ChargedPicoUSD.Cmp(want.charged) != 0 {
			t.Errorf("%s %s: balance %v, charged %v; want %v, %v", want.typ, want.id, a.BalancePicoUSD,
				a.ChargedPicoUSD, want.balance, want.charged)
		}
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.InsertUsage(ctx, []store.UsageRecord{{RequestID: "r5", UserID: "u1", Status: 200,
		CostPicoUSD: ptr(int64(1000)), Charge: true, PayerType: "user", PayerID: "u1", StartedAt: at, EndedAt: at}}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.CreditAccountOf(ctx, "user", "u1"); err != nil || a.ChargedPicoUSD.Cmp(big.NewInt(1123)) != 0 {
		t.Errorf("after a charge: %+v, %v; want charged 1123", a, err)
	}
}

// TestLedgerAccountCheck: without a foreign key, the ledger still refuses an entry of an unknown
// account (whatever else its statement inserts), and accounts cannot be deleted, truncated or
// renumbered, so no entry is ever left without its account.
func TestLedgerAccountCheck(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := s.EnsureCreditAccount(ctx, "user", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCredit(ctx, a.ID, "grant", big.NewInt(10), ""); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO credit_ledger (account_id, kind, amount_pico_usd) VALUES ('ca_nope', 'grant', 1)`,
		`INSERT INTO credit_ledger (account_id, kind, amount_pico_usd)
			SELECT unnest(ARRAY[id, 'ca_nope']), 'grant', 1 FROM credit_accounts`,
	} {
		_, err := s.pool.Exec(ctx, q)
		if !errors.Is(mapErr(err), store.ErrNotFound) {
			t.Errorf("%s: err = %v, want a foreign-key violation", q, err)
		}
	}
	for _, q := range []string{
		`DELETE FROM credit_accounts`,
		`UPDATE credit_accounts SET id = 'ca_other'`,
		`TRUNCATE credit_accounts CASCADE`,
	} {
		if _, err := s.pool.Exec(ctx, q); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	got, err := s.CreditAccountOf(ctx, "user", "u1")
	if err != nil || got.ID != a.ID || got.BalancePicoUSD.Cmp(big.NewInt(10)) != 0 {
		t.Errorf("account after the refused writes = %+v, %v; want %s with its balance of 10", got, err, a.ID)
	}
	var entries int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM credit_ledger`).Scan(&entries); err != nil || entries != 1 {
		t.Errorf("%d ledger entries, %v; want the grant alone", entries, err)
	}
}
