package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/internal/testsvc"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/sqlite"
)

var pg *testsvc.PostgresServer

// TestMain stops the package's PostgreSQL before looking for leaked goroutines, which its
// process watcher would otherwise be.
func TestMain(m *testing.M) {
	var stop func()
	pg, stop = testsvc.Postgres()
	code := m.Run()
	stop()
	if code == 0 && os.Getenv(crashChildEnv) == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.New(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// base is one start time for every record of a run: (request_id, started_at) is the key, so a
// record must keep its StartedAt however many times it is written.
var base = time.Now().UTC().Truncate(time.Microsecond)

func rec(i int) store.UsageRecord {
	return store.UsageRecord{RequestID: fmt.Sprintf("req-%06d", i), TenantID: store.DefaultTenant, Status: 200,
		Model: "gpt-4o-mini", Deployment: "up/gpt-4o-mini", PromptTokens: int64(i % 1000), CompletionTokens: 7, StartedAt: base, EndedAt: base}
}

func count(t testing.TB, st store.Store) int {
	t.Helper()
	recs, err := st.ListUsage(context.Background(), store.UsageFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// spoolOpts are options with a spool in a fresh directory and intervals short enough for tests.
func spoolOpts(t testing.TB) Options {
	dir := t.TempDir()
	return Options{SpoolDir: filepath.Join(dir, "spool"), DeadLetterDir: filepath.Join(dir, "deadletter"),
		FlushInterval: 10 * time.Millisecond, ReplayInterval: 50 * time.Millisecond,
		SpoolSyncInterval: 50 * time.Millisecond}
}

func mustNew(t testing.TB, sink Sink, opts Options) *Recorder {
	t.Helper()
	r, err := New(sink, opts, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func closeRecorder(t testing.TB, r *Recorder, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseWritesEverythingQueued(t *testing.T) {
	st := newStore(t)
	r := NewRecorder(st, Options{BatchSize: 100, FlushInterval: time.Hour}, quiet)
	for i := 0; i < 2550; i++ {
		if !r.Record(rec(i)) {
			t.Fatal("record refused")
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st); n != 2550 {
		t.Errorf("%d rows after Close, want 2550", n)
	}
	if s := r.Stats(); s.Written != 2550 || s.Dropped != 0 || s.Enqueued != 2550 {
		t.Errorf("stats %+v", s)
	}
}

func TestFlushesByInterval(t *testing.T) {
	st := newStore(t)
	r := NewRecorder(st, Options{BatchSize: 1000, FlushInterval: 20 * time.Millisecond}, quiet)
	defer r.Close(context.Background())
	r.Record(rec(1))
	waitFor(t, 5*time.Second, "a lone record flushed by the interval", func() bool { return count(t, st) == 1 })
}

// gatedSink blocks every insert until released or until its context ends.
type gatedSink struct{ release chan struct{} }

func (g gatedSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	select {
	case <-g.release:
		return len(recs), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TestRecordWithoutSpoolDrops: with no spool the recorder behaves as it did before the spool:
// a full queue drops (counted) and never blocks.
func TestRecordWithoutSpoolDrops(t *testing.T) {
	g := gatedSink{release: make(chan struct{})}
	r := NewRecorder(g, Options{QueueSize: 10, BatchSize: 1}, quiet)
	start := time.Now()
	accepted := 0
	for i := 0; i < 1000; i++ {
		if r.Record(rec(i)) {
			accepted++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 Record calls against a stuck sink took %v", d)
	}
	if s := r.Stats(); accepted > 11 || s.Dropped != int64(1000-accepted) {
		t.Errorf("accepted %d with a queue of 10, stats %+v", accepted, s)
	}
	close(g.release)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRecordNeverBlocks: with the sink stuck and a tiny queue, 100k concurrent Record calls
// return quickly and every record is accounted for, queued or spooled; after Close and a restart
// against a working sink, every one of them is delivered.
func TestRecordNeverBlocks(t *testing.T) {
	const workers, per = 4, 25000
	opts := spoolOpts(t)
	opts.QueueSize, opts.BatchSize = 16, 4
	g := gatedSink{release: make(chan struct{})}
	r := mustNew(t, g, opts)
	start := time.Now()
	var wg sync.WaitGroup
	refused := make([]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if !r.Record(rec(w*per + i)) {
					refused[w]++
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := r.Stats()
	t.Logf("100k Record calls against a stuck sink: %v (%v per call); %+v", elapsed, elapsed/(workers*per), s)
	// About 0.5 s here without -race, a few seconds with it; a blocked call would hang forever.
	if elapsed > 60*time.Second {
		t.Errorf("100k Record calls took %v", elapsed)
	}
	for _, n := range refused {
		if n != 0 {
			t.Fatalf("Record refused records: %v", refused)
		}
	}
	if s.Enqueued+s.Spooled != workers*per || s.Dropped != 0 {
		t.Errorf("enqueued %d + spooled %d != %d (dropped %d)", s.Enqueued, s.Spooled, workers*per, s.Dropped)
	}
	closeRecorder(t, r, 200*time.Millisecond) // the sink is still stuck: the rest is spooled

	sink := &collectSink{seen: map[string]bool{}}
	r2 := mustNew(t, sink, opts)
	waitFor(t, 60*time.Second, "the spool replayed", func() bool { return r2.Stats().SpoolBytes == 0 })
	closeRecorder(t, r2, 10*time.Second)
	for i := range workers * per {
		if !sink.seen[rec(i).RequestID] {
			t.Fatalf("record %d missing after replay", i)
		}
	}
	if s := r2.Stats(); s.DeadLettered != 0 || s.Replayed < workers*per {
		t.Errorf("after replay: %+v", s)
	}
}

// TestRecordAfterClose: a late Record neither panics nor blocks; it is spooled while Close runs
// and refused (counted) after.
func TestRecordAfterClose(t *testing.T) {
	r := mustNew(t, newStore(t), spoolOpts(t))
	closeRecorder(t, r, 5*time.Second)
	if r.Record(rec(1)) {
		t.Error("Record after Close reported success")
	}
	if s := r.Stats(); s.Dropped != 1 {
		t.Errorf("dropped %d, want 1", s.Dropped)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSpoolDirLocked(t *testing.T) {
	opts := spoolOpts(t)
	r := mustNew(t, newStore(t), opts)
	defer closeRecorder(t, r, 5*time.Second)
	if _, err := New(newStore(t), opts, quiet); err == nil {
		t.Fatal("a second recorder opened a spool directory in use")
	}
	// NewRecorder degrades to no spool rather than failing.
	r2 := NewRecorder(newStore(t), opts, quiet)
	if r2.spool != nil {
		t.Error("NewRecorder shares a locked spool")
	}
	closeRecorder(t, r2, 5*time.Second)
}

// flakySink fails every call (a transient error) while down is set.
type flakySink struct {
	Sink
	mu   sync.Mutex
	down bool
}

var errDown = errors.New("connection refused")

func (f *flakySink) setDown(v bool) {
	f.mu.Lock()
	f.down = v
	f.mu.Unlock()
}

func (f *flakySink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return 0, errDown
	}
	return f.Sink.InsertUsage(ctx, recs)
}

// TestOutageSpoolsAndReplays: while the sink fails, batches are spooled instead of lost (after
// the retries, then at once); when it answers again the spool is replayed and deleted.
func TestOutageSpoolsAndReplays(t *testing.T) {
	st := newStore(t)
	f := &flakySink{Sink: st, down: true}
	opts := spoolOpts(t)
	opts.BatchSize = 50
	r := mustNew(t, f, opts)
	for i := range 1000 {
		r.Record(rec(i))
		if i%100 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(t, 10*time.Second, "records spooled", func() bool { return r.Stats().Spooled == 1000 })
	if !r.down.Load() {
		t.Error("the writer did not take the database as down")
	}
	f.setDown(false)
	// The writer notices the sink is back at its next probe, after backing off; on 2 shared cores
	// under -race, with other packages testing beside it, that has taken longer than 10 s.
	waitFor(t, 30*time.Second, "the spool replayed", func() bool { return count(t, st) == 1000 })
	waitFor(t, 30*time.Second, "the spool emptied", func() bool { return r.Stats().SpoolBytes == 0 })
	for i := 1000; i < 1100; i++ {
		r.Record(rec(i))
	}
	closeRecorder(t, r, 10*time.Second)
	s := r.Stats()
	if n := count(t, st); n != 1100 {
		t.Errorf("%d rows, want 1100", n)
	}
	if s.Replayed != 1000 || s.Dropped != 0 || s.WriteErrors == 0 {
		t.Errorf("stats %+v", s)
	}
	if r.down.Load() {
		t.Error("still down after the database answered")
	}
}
