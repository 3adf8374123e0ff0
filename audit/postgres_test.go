package audit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/internal/testsvc"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/postgres"
)

// newPG returns a migrated PostgreSQL store on a fresh database of srv, and its URL.
func newPG(t testing.TB, srv *testsvc.PostgresServer) (*postgres.Store, string) {
	t.Helper()
	dsn := srv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := postgres.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st, dsn
}

// ledger is what the database holds: usage rows, distinct request ids, and the rollups' request
// and prompt-token sums (which a double-counted replay would inflate).
type ledger struct {
	rows, distinct, rollupRequests, rollupPrompt, prompt int64
}

func readLedger(t testing.TB, dsn string) ledger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var l ledger
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT request_id), COALESCE(sum(prompt_tokens), 0)
		FROM usage_records`).Scan(&l.rows, &l.distinct, &l.prompt); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT COALESCE(sum(requests), 0)::bigint, COALESCE(sum(prompt_tokens), 0)::bigint
		FROM billing_record`).Scan(&l.rollupRequests, &l.rollupPrompt); err != nil {
		t.Fatal(err)
	}
	return l
}

// check asserts the ledger holds exactly n records, each once, counted once in the rollups.
func (l ledger) check(t testing.TB, n int64) {
	t.Helper()
	if l.rows != n || l.distinct != n || l.rollupRequests != n || l.rollupPrompt != l.prompt {
		t.Errorf("ledger %+v; want exactly %d rows, %d distinct request ids, rollups counting each once", l, n, n)
	}
}

// outageDuration is how long TestPostgresOutageZeroLoss keeps PostgreSQL down: 5 s by default,
// LLMGATE_TEST_PG_OUTAGE (a Go duration: "30s" is the figure) to change it.
func outageDuration(t *testing.T) time.Duration {
	if v := os.Getenv("LLMGATE_TEST_PG_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LLMGATE_TEST_PG_OUTAGE: %v", err)
		}
		return d
	}
	return 5 * time.Second
}

// TestPostgresOutageZeroLoss is the zero-loss test: 20,000 records recorded by 20
// goroutines at a steady pace while PostgreSQL is stopped in the middle and started again. Every
// record ends in usage_records exactly once, and in the rollups once.
func TestPostgresOutageZeroLoss(t *testing.T) {
	const producers, per = 20, 1000
	outage := outageDuration(t)
	srv, stop := testsvc.Postgres() // a server of its own: the outage must not hit other tests
	t.Cleanup(stop)
	st, dsn := newPG(t, srv)

	opts := spoolOpts(t)
	opts.QueueSize, opts.BatchSize, opts.FlushInterval = 2000, 500, 50*time.Millisecond
	opts.ReplayInterval, opts.WriteTimeout = 200*time.Millisecond, 5*time.Second
	r := mustNew(t, st, opts)

	span := outage + 3*time.Second // recording goes on 1 s before, through, and 2 s after the outage
	gap := span / per
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if !r.Record(rec(p*per + i)) {
					t.Errorf("record %d refused", p*per+i)
				}
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * gap)))
			}
		}()
	}
	time.Sleep(time.Second)
	srv.Stop(t)
	t.Logf("PostgreSQL stopped at %v; %+v", time.Since(start).Round(time.Millisecond), r.Stats())
	time.Sleep(outage)
	during := r.Stats()
	srv.Start(t)
	t.Logf("PostgreSQL started at %v; %+v", time.Since(start).Round(time.Millisecond), during)
	wg.Wait()
	t.Logf("recording done at %v", time.Since(start).Round(time.Millisecond))

	waitFor(t, 120*time.Second, "every record in PostgreSQL", func() bool {
		return readLedger(t, dsn).rows == producers*per
	})
	t.Logf("all %d rows in at %v", producers*per, time.Since(start).Round(time.Millisecond))
	closeRecorder(t, r, 30*time.Second)
	s := r.Stats()
	t.Logf("stats: %+v", s)
	readLedger(t, dsn).check(t, producers*per)
	if during.Spooled == 0 || s.Replayed == 0 || s.Dropped != 0 || s.DeadLettered != 0 || s.SpoolBytes != 0 {
		t.Errorf("stats %+v: want records spooled during the outage, replayed after, none dropped", s)
	}
}

// TestPostgresPoisonRecord: a record PostgreSQL itself refuses (a NUL byte in a text column:
// SQLSTATE 22021) is dead-lettered alone; the 999 others of its batch commit.
func TestPostgresPoisonRecord(t *testing.T) {
	st, dsn := newPG(t, pg)
	opts := spoolOpts(t)
	opts.FlushInterval, opts.BatchSize = time.Hour, 1000 // one batch, flushed by size
	r := mustNew(t, st, opts)
	for i := range 1000 {
		x := rec(i)
		if i == 617 {
			x.SessionID = "bad\x00session"
		}
		r.Record(x)
	}
	waitFor(t, 30*time.Second, "the dead letter", func() bool { return r.Stats().DeadLettered == 1 })
	closeRecorder(t, r, 10*time.Second)
	readLedger(t, dsn).check(t, 999)
	entries := readDeadLetters(t, opts.DeadLetterDir)
	if len(entries) != 1 || entries[0].Record == nil || entries[0].Record.RequestID != rec(617).RequestID ||
		entries[0].Record.SessionID != "bad\x00session" || !strings.Contains(entries[0].Error, "22021") {
		t.Errorf("dead letters %+v", entries)
	}
	if s := r.Stats(); s.Spooled != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestPostgresRetryAfterCommit: batches committed and then reported failed are written again,
// by the writer's retries and by replay, and neither the rows nor the rollups count twice.
func TestPostgresRetryAfterCommit(t *testing.T) {
	st, dsn := newPG(t, pg)
	sink := &commitThenFailSink{Sink: st}
	sink.failures.Store(6)
	opts := spoolOpts(t)
	opts.BatchSize = 250
	r := mustNew(t, sink, opts)
	for i := range 2000 {
		r.Record(rec(i))
	}
	waitFor(t, 30*time.Second, "the spool replayed", func() bool {
		s := r.Stats()
		return s.Spooled > 0 && s.SpoolBytes == 0 && s.Backlog == 0 && readLedger(t, dsn).rows == 2000
	})
	closeRecorder(t, r, 10*time.Second)
	readLedger(t, dsn).check(t, 2000)
	if s := r.Stats(); s.WriteErrors < 6 || s.Written < 2000 {
		t.Errorf("stats %+v", s)
	}
}

// BenchmarkWriterPostgres is the writer's throughput into PostgreSQL with COPY, end to end: b.N
// records through Record, the channel, the batch writer and InsertUsage (COPY into a temporary
// table, INSERT … ON CONFLICT DO NOTHING, rollups and charges), timed from the first Record to
// the last row committed (Close drains the queue). The queue holds all b.N records, so nothing
// spools: this is the writer's rate, not the spool's. Run with -benchtime=200000x or so.
func BenchmarkWriterPostgres(b *testing.B) {
	for _, batch := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st, dsn := newPG(b, pg)
			opts := spoolOpts(b)
			opts.QueueSize, opts.BatchSize = b.N, batch
			r := mustNew(b, st, opts)
			recs := make([]store.UsageRecord, b.N)
			for i := range recs {
				recs[i] = rec(i)
				cost := int64(i) * 150_000
				recs[i].UserID, recs[i].CostPicoUSD = fmt.Sprintf("user-%d", i%100), &cost
			}
			b.ResetTimer()
			start := time.Now()
			for i := range recs {
				r.Record(recs[i])
			}
			closeRecorder(b, r, 10*time.Minute)
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
			if l := readLedger(b, dsn); l.rows != int64(b.N) {
				b.Fatalf("%d rows, want %d", l.rows, b.N)
			}
			if s := r.Stats(); s.Spooled != 0 {
				b.Fatalf("spooled %d: the benchmark measures the writer alone", s.Spooled)
			}
		})
	}
}
