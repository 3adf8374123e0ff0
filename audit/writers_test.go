package audit

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// overlapSink passes batches to its Sink and keeps the most calls it has seen in it at once. The
// first calls wait (up to 10 s) until want of them are inside together, so that writers able to
// run in parallel are seen to, and, against a database, start their transactions together.
type overlapSink struct {
	Sink
	want    int
	mu      sync.Mutex
	in, max int
	met     chan struct{} // closed when want calls were inside at once
	waited  bool          // one call has waited out the 10 s: later calls do not wait
}

func newOverlapSink(s Sink, want int) *overlapSink {
	return &overlapSink{Sink: s, want: want, met: make(chan struct{})}
}

func (s *overlapSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	s.mu.Lock()
	s.in++
	if s.in > s.max {
		s.max = s.in
		if s.max == s.want {
			close(s.met)
		}
	}
	wait := s.max < s.want && !s.waited
	s.mu.Unlock()
	if wait {
		select {
		case <-s.met:
		case <-time.After(10 * time.Second):
			s.mu.Lock()
			s.waited = true
			s.mu.Unlock()
		}
	}
	n, err := s.Sink.InsertUsage(ctx, recs)
	s.mu.Lock()
	s.in--
	s.mu.Unlock()
	return n, err
}

func (s *overlapSink) most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// TestWritersRunInParallel: with usage.writers at 3, three batches are in the Sink at once.
func TestWritersRunInParallel(t *testing.T) {
	sink := newOverlapSink(discardSink{}, 3)
	opts := spoolOpts(t)
	opts.Writers, opts.BatchSize, opts.FlushInterval = 3, 100, time.Hour // three full batches
	r := mustNew(t, sink, opts)
	for i := range 300 {
		r.Record(rec(i))
	}
	closeRecorder(t, r, 60*time.Second)
	if got := sink.most(); got != 3 {
		t.Errorf("at most %d batches in the sink at once, want 3 (usage.writers)", got)
	}
	if s := r.Stats(); s.Written != 300 || s.Spooled != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// charged is 20,000 records of one day, one key and one model, from seven users with a credit
// account each: every batch of any writer adds to the same rollup rows and charges the same
// accounts. One record in five, and every record of the span [10000, 12000), is not charged, so
// that batches with nothing to charge (the other form of the store's statement) run beside
// charging ones.
func charged() []store.UsageRecord {
	recs := make([]store.UsageRecord, 20000)
	for i := range recs {
		recs[i] = rec(i)
		cost := 1_000_003 + int64(i)*7
		recs[i].UserID, recs[i].KeyID, recs[i].CostPicoUSD = fmt.Sprintf("user-%d", i%7), "key-1", &cost
		if i%5 != 0 && (i < 10000 || i >= 12000) {
			recs[i].Charge, recs[i].PayerType, recs[i].PayerID = true, "user", recs[i].UserID
		}
	}
	return recs
}

// checkCharges asserts each account's balance, running total of charges and ledger entries are
// exactly those of the charged records, each charged once.
func checkCharges(t *testing.T, st interface {
	CreditAccountOf(context.Context, string, string) (store.CreditAccount, error)
}, dsn string, recs []store.UsageRecord) {
	t.Helper()
	want := map[string]*big.Int{}
	entries := map[string]int64{}
	for _, r := range recs {
		if !r.Charge {
			continue
		}
		if want[r.PayerID] == nil {
			want[r.PayerID] = new(big.Int)
		}
		want[r.PayerID].Add(want[r.PayerID], big.NewInt(*r.CostPicoUSD))
		entries[r.PayerID]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for user, sum := range want {
		a, err := st.CreditAccountOf(ctx, "user", user)
		if err != nil {
			t.Fatal(err)
		}
		if a.ChargedPicoUSD.Cmp(sum) != 0 || new(big.Int).Neg(a.BalancePicoUSD).Cmp(sum) != 0 {
			t.Errorf("%s: balance %v, charged %v; want -%v and %v", user, a.BalancePicoUSD, a.ChargedPicoUSD, sum, sum)
		}
		var n, distinct int64
		if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT request_id) FROM credit_ledger
			WHERE account_id = $1 AND kind = 'charge'`, a.ID).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != entries[user] || distinct != n {
			t.Errorf("%s: %d charge entries (%d distinct requests), want %d", user, n, distinct, entries[user])
		}
	}
}

// TestPostgresWritersChargeSameAccounts: four writers commit batches that charge the same seven
// accounts and add to the same rollup rows, their first transactions started together. None
// deadlocks or fails (a failure would show in WriteErrors), and afterwards the rows, the rollups,
// the balances and the ledger entries are exactly those of the records, each counted once.
func TestPostgresWritersChargeSameAccounts(t *testing.T) {
	st, dsn := newPG(t, pg)
	recs := charged()
	for u := range 7 {
		if _, err := st.EnsureCreditAccount(context.Background(), "user", fmt.Sprintf("user-%d", u)); err != nil {
			t.Fatal(err)
		}
	}
	sink := newOverlapSink(st, 4)
	opts := spoolOpts(t)
	opts.Writers, opts.BatchSize, opts.QueueSize = 4, 250, len(recs)
	r := mustNew(t, sink, opts)
	for i := range recs {
		if !r.Record(recs[i]) {
			t.Fatalf("record %d refused", i)
		}
	}
	closeRecorder(t, r, 5*time.Minute)
	readLedger(t, dsn).check(t, int64(len(recs)))
	checkCharges(t, st, dsn, recs)
	if got := sink.most(); got != 4 {
		t.Errorf("at most %d batches in PostgreSQL at once, want 4", got)
	}
	if s := r.Stats(); s.WriteErrors != 0 || s.Spooled != 0 || s.Dropped != 0 || s.DeadLettered != 0 || s.Written != int64(len(recs)) {
		t.Errorf("stats %+v: want every record written at the first try", s)
	}
}

// TestPostgresWritersRetryAfterCommit: with three writers, batches that commit and are then
// reported failed are written again, by the writers' retries and by replay from the spool, and
// no record is counted or charged twice.
func TestPostgresWritersRetryAfterCommit(t *testing.T) {
	st, dsn := newPG(t, pg)
	recs := charged()[:6000]
	for u := range 7 {
		if _, err := st.EnsureCreditAccount(context.Background(), "user", fmt.Sprintf("user-%d", u)); err != nil {
			t.Fatal(err)
		}
	}
	overlap := newOverlapSink(st, 3)
	sink := &commitThenFailSink{Sink: overlap}
	sink.failures.Store(12) // some batches fail all their retries and are spooled: replayed later
	opts := spoolOpts(t)
	opts.Writers, opts.BatchSize, opts.QueueSize = 3, 250, len(recs)
	r := mustNew(t, sink, opts)
	for i := range recs {
		r.Record(recs[i])
	}
	waitFor(t, 60*time.Second, "every record written and the spool replayed", func() bool {
		s := r.Stats()
		return s.SpoolBytes == 0 && s.Backlog == 0 && readLedger(t, dsn).rows == int64(len(recs))
	})
	closeRecorder(t, r, 30*time.Second)
	readLedger(t, dsn).check(t, int64(len(recs)))
	checkCharges(t, st, dsn, recs)
	if got := overlap.most(); got < 3 { // replay may add one
		t.Errorf("at most %d batches in PostgreSQL at once, want 3 or more", got)
	}
	if s := r.Stats(); s.WriteErrors < 12 || s.Dropped != 0 || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestCloseWithWritersStuck: three writers stuck in a Sink that ignores its context, and a
// queue behind them: Close meets its deadline with every batch and the queue spooled, and a new
// recorder replays all of them.
func TestCloseWithWritersStuck(t *testing.T) {
	opts := spoolOpts(t)
	opts.Writers, opts.BatchSize = 3, 10
	sink := &ignoringSink{release: make(chan struct{}), entered: make(chan struct{})}
	r := mustNew(t, sink, opts)
	for i := range 100 {
		r.Record(rec(i))
	}
	<-sink.entered
	start := time.Now()
	closeRecorder(t, r, 300*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", d)
	}
	if s := r.Stats(); s.Spooled != 100 || s.Dropped != 0 {
		t.Errorf("spooled %d, want all 100 (%+v)", s.Spooled, s)
	}
	close(sink.release)
	<-r.writerDone
	st := newStore(t)
	r2 := mustNew(t, st, opts)
	waitFor(t, 10*time.Second, "replay", func() bool { return count(t, st) == 100 })
	closeRecorder(t, r2, 10*time.Second)
}

// deadlockOnceSink fails the first call with PostgreSQL's deadlock error, having written nothing
// (PostgreSQL rolls the transaction back), and passes every later call on.
type deadlockOnceSink struct {
	Sink
	failed atomic.Bool
}

func (s *deadlockOnceSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	if s.failed.CompareAndSwap(false, true) {
		return 0, fmt.Errorf("postgres: insert usage: %w", pgState{"40P01"})
	}
	return s.Sink.InsertUsage(ctx, recs)
}

// TestPostgresWritersDeadlockRetried: a batch that fails as a deadlock victim (or a
// serialization failure, 40001) is transient: written again by the writer's retry, not split or
// dead-lettered, and charged once.
func TestPostgresWritersDeadlockRetried(t *testing.T) {
	for _, code := range []string{"40P01", "40001"} {
		if classifier(nil)(pgState{code}) {
			t.Errorf("SQLSTATE %s classified as a rejection of the data", code)
		}
	}
	st, dsn := newPG(t, pg)
	recs := charged()[:2000]
	for u := range 7 {
		if _, err := st.EnsureCreditAccount(context.Background(), "user", fmt.Sprintf("user-%d", u)); err != nil {
			t.Fatal(err)
		}
	}
	opts := spoolOpts(t)
	opts.Writers, opts.BatchSize = 2, 500
	r := mustNew(t, &deadlockOnceSink{Sink: st}, opts)
	for i := range recs {
		r.Record(recs[i])
	}
	closeRecorder(t, r, 60*time.Second)
	readLedger(t, dsn).check(t, int64(len(recs)))
	checkCharges(t, st, dsn, recs)
	if s := r.Stats(); s.WriteErrors != 1 || s.Spooled != 0 || s.DeadLettered != 0 || s.Written != int64(len(recs)) {
		t.Errorf("stats %+v: want one failed write, retried", s)
	}
}
