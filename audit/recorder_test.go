package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t *testing.T) store.Store {
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

func rec(i int) store.UsageRecord {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.UsageRecord{RequestID: fmt.Sprintf("req-%06d", i), TenantID: store.DefaultTenant, Status: 200, StartedAt: now, EndedAt: now}
}

func count(t *testing.T, st store.Store) int {
	t.Helper()
	recs, err := st.ListUsage(context.Background(), store.UsageFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
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
	deadline := time.Now().Add(5 * time.Second)
	for count(t, st) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a lone record was not flushed by the interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gatedSink blocks every insert until released, to fill the queue behind it.
type gatedSink struct{ release chan struct{} }

func (g gatedSink) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	<-g.release
	return len(recs), nil
}

func TestRecordNeverBlocks(t *testing.T) {
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
