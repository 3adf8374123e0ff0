package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/llmgate/store"
)

// rejectingSink refuses, as a database would, any batch holding a record whose id is poison.
type rejectingSink struct {
	Sink
	poison map[string]bool
	calls  atomic.Int64
}

func (s *rejectingSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	s.calls.Add(1)
	for _, r := range recs {
		if s.poison[r.RequestID] {
			return 0, fmt.Errorf("insert usage: %w: record %s violates a constraint", ErrRejected, r.RequestID)
		}
	}
	return s.Sink.InsertUsage(ctx, recs)
}

// TestPoisonRecordIsolated: two bad records in a batch of 1000 are dead-lettered alone, by
// binary split, and the 998 others commit, whether they come fresh or from the spool.
func TestPoisonRecordIsolated(t *testing.T) {
	for _, fromSpool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", fromSpool), func(t *testing.T) {
			st := newStore(t)
			sink := &rejectingSink{Sink: st, poison: map[string]bool{rec(123).RequestID: true, rec(777).RequestID: true}}
			opts := spoolOpts(t)
			opts.FlushInterval, opts.BatchSize = time.Hour, 1000 // one batch of 1000, flushed by size
			if fromSpool {
				s := openTestSpool(t, opts.SpoolDir, 1<<20)
				batch := make([]store.UsageRecord, 1000)
				for i := range batch {
					batch[i] = rec(i)
				}
				s.appendBatch(batch)
				s.close()
			}
			r := mustNew(t, sink, opts)
			if !fromSpool {
				for i := range 1000 {
					r.Record(rec(i))
				}
			}
			waitFor(t, 10*time.Second, "998 rows", func() bool { return count(t, st) == 998 })
			waitFor(t, 10*time.Second, "two dead letters", func() bool { return r.Stats().DeadLettered == 2 })
			closeRecorder(t, r, 10*time.Second)
			entries := readDeadLetters(t, opts.DeadLetterDir)
			if len(entries) != 2 {
				t.Fatalf("%d dead letters, want 2", len(entries))
			}
			for _, e := range entries {
				if e.Reason != reasonRejected || e.Record == nil || !sink.poison[e.Record.RequestID] ||
					!strings.Contains(e.Error, "violates") {
					t.Errorf("dead letter %+v", e)
				}
			}
			// A binary split of 1000 with two bad records takes a few dozen calls, not 1000.
			if c := sink.calls.Load(); c > 60 {
				t.Errorf("%d sink calls to isolate two records", c)
			}
			if s := r.Stats(); s.Dropped != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// commitThenFailSink commits a batch and then reports a failure, as a connection lost after the
// COMMIT was sent does: the writer cannot know, writes it again, and the store must not
// duplicate it.
type commitThenFailSink struct {
	Sink
	failures atomic.Int64
}

func (s *commitThenFailSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	n, err := s.Sink.InsertUsage(ctx, recs)
	if err == nil && s.failures.Add(-1) >= 0 {
		return n, fmt.Errorf("connection reset after commit")
	}
	return n, err
}

func TestBatchRetriedAfterCommit(t *testing.T) {
	st := newStore(t)
	sink := &commitThenFailSink{Sink: st}
	sink.failures.Store(5) // the first batch fails all its retries and is spooled: replayed later too
	opts := spoolOpts(t)
	opts.BatchSize = 100
	r := mustNew(t, sink, opts)
	for i := range 500 {
		r.Record(rec(i))
	}
	waitFor(t, 10*time.Second, "the spool replayed", func() bool {
		s := r.Stats()
		return s.Spooled > 0 && s.SpoolBytes == 0 && s.Backlog == 0
	})
	closeRecorder(t, r, 10*time.Second)
	if n := count(t, st); n != 500 {
		t.Errorf("%d rows, want 500: a batch written again must not duplicate", n)
	}
	if s := r.Stats(); s.WriteErrors < 5 || s.Spooled == 0 {
		t.Errorf("stats %+v: want five batches committed and reported failed, and the spool used", s)
	}
}

// TestCloseSpoolsWhatItCannotWrite: SIGTERM with a full queue and a database that does not
// answer: Close returns by its deadline with everything spooled, and the next start replays all.
func TestCloseSpoolsWhatItCannotWrite(t *testing.T) {
	const total = 3500
	opts := spoolOpts(t)
	opts.QueueSize, opts.BatchSize = 2000, 500
	g := gatedSink{release: make(chan struct{})} // stuck; honours its context
	r := mustNew(t, g, opts)
	for i := range total { // the queue fills; the overflow spools
		if !r.Record(rec(i)) {
			t.Fatal("record refused")
		}
	}
	if s := r.Stats(); s.Backlog < 1500 {
		t.Fatalf("queue not full: %+v", s)
	}
	start := time.Now()
	closeRecorder(t, r, 300*time.Millisecond)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a 300ms deadline", d)
	}
	s := r.Stats()
	if s.Spooled < total || s.Dropped != 0 || s.Written != 0 {
		t.Errorf("after Close: %+v; want all %d spooled (the writer's batch too)", s, total)
	}

	st := newStore(t)
	r2 := mustNew(t, st, opts)
	waitFor(t, 60*time.Second, "every record replayed", func() bool { return count(t, st) == total })
	closeRecorder(t, r2, 10*time.Second)
}

// ignoringSink never returns until released, whatever its context says: Close must still meet
// its deadline and keep the stuck batch.
type ignoringSink struct {
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *ignoringSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return 0, fmt.Errorf("too late")
}

func TestCloseWithSinkIgnoringContext(t *testing.T) {
	opts := spoolOpts(t)
	opts.BatchSize = 10
	sink := &ignoringSink{release: make(chan struct{}), entered: make(chan struct{})}
	r := mustNew(t, sink, opts)
	for i := range 100 {
		r.Record(rec(i))
	}
	<-sink.entered
	closeRecorder(t, r, 200*time.Millisecond)
	if s := r.Stats(); s.Spooled != 100 {
		t.Errorf("spooled %d, want all 100 (%+v)", s.Spooled, s)
	}
	close(sink.release) // the writer returns, sees it was taken over, exits: goleak checks
	<-r.writerDone
	st := newStore(t)
	r2 := mustNew(t, st, opts)
	waitFor(t, 10*time.Second, "replay", func() bool { return count(t, st) == 100 })
	closeRecorder(t, r2, 10*time.Second)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	st := newStore(t)
	sink := &rejectingSink{Sink: st, poison: map[string]bool{rec(3).RequestID: true}}
	opts := spoolOpts(t)
	opts.Registerer = reg
	r := mustNew(t, sink, opts)
	for i := range 10 {
		r.Record(rec(i))
	}
	waitFor(t, 10*time.Second, "the dead letter", func() bool { return r.Stats().DeadLettered == 1 })
	other := spoolOpts(t)
	other.Registerer = reg
	if _, err := New(st, other, quiet); !errors.Is(err, errMetrics) {
		t.Errorf("a second recorder registering the same metrics: %v", err)
	}
	// NewRecorder gives up the metrics, not the spool.
	r2 := NewRecorder(st, other, quiet)
	if r2.spool == nil || len(r2.metrics.collectors) != 0 {
		t.Error("NewRecorder did not degrade to a recorder with a spool and without metrics")
	}
	closeRecorder(t, r2, 5*time.Second)
	want := map[string]bool{"gov_audit_process_duration_ms": true, "gov_dead_letter_total": true,
		"gov_db_write_error_total": true, "llmgate_usage_queue_depth": true, "llmgate_usage_spooled_total": true,
		"llmgate_usage_replayed_total": true, "llmgate_usage_spool_bytes": true,
		"llmgate_usage_written_total": true, "llmgate_usage_dropped_total": true,
		"llmgate_usage_spool_max_bytes": true, "llmgate_usage_spool_full_dropped_total": true}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !want[mf.GetName()] {
			t.Errorf("unexpected metric %s", mf.GetName())
		}
		delete(want, mf.GetName())
		if mf.GetName() == "gov_db_write_error_total" {
			lp := mf.GetMetric()[0].GetLabel()
			if len(lp) != 1 || lp[0].GetName() != "table" || lp[0].GetValue() != "usage_records" {
				t.Errorf("gov_db_write_error_total labels %v", lp)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("missing metrics %v", want)
	}
	if n := testutil.ToFloat64(r.metrics.collectors[1]); n != 1 {
		t.Errorf("gov_dead_letter_total = %v, want 1", n)
	}
	closeRecorder(t, r, 10*time.Second)
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d metrics still registered after Close", n)
	}
}

func TestClassification(t *testing.T) {
	pgErr := func(code string) error { return fmt.Errorf("postgres: insert: %w", pgState{code}) }
	cases := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("x: %w", ErrRejected), true},
		{pgErr("22021"), true}, // invalid byte sequence (NUL in text)
		{pgErr("23514"), true}, // check violation
		{pgErr("08006"), false},
		{pgErr("57P01"), false}, // admin shutdown
		{pgErr("42P01"), false}, // undefined table: a migration, not the data
		{fmt.Errorf("sqlite: %w", liteCode(19|(1<<8))), true},
		{fmt.Errorf("sqlite: %w", liteCode(5)), false}, // SQLITE_BUSY
		{context.DeadlineExceeded, false},
		{fmt.Errorf("%w and %w", context.Canceled, ErrRejected), false},
		{errDown, false},
	}
	classify := classifier(nil)
	for _, c := range cases {
		if got := classify(c.err); got != c.want {
			t.Errorf("rejected(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

type pgState struct{ code string }

func (e pgState) Error() string    { return "SQLSTATE " + e.code }
func (e pgState) SQLState() string { return e.code }

type liteCode int

func (e liteCode) Error() string { return fmt.Sprintf("sqlite code %d", int(e)) }
func (e liteCode) Code() int     { return int(e) }
