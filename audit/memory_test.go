package audit

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// TestQueueCostsNoMemoryUpFront: the channel holds pointers, so an idle recorder with the default
// queue of 65,536 records costs half a megabyte rather than the 32 MB its records would take.
func TestQueueCostsNoMemoryUpFront(t *testing.T) {
	release := make(chan struct{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := mustNew(t, gatedSink{release: release}, Options{BatchSize: 100, FlushInterval: time.Hour})
	runtime.ReadMemStats(&after)
	defer closeRecorder(t, r, 10*time.Second)
	defer close(release)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Fatalf("New with the default queue allocated %.1f MB; want at most 4 MB", float64(got)/(1<<20))
	}
	for i := range 10 {
		if !r.Record(rec(i)) {
			t.Fatalf("record %d not taken", i)
		}
	}
	if got := r.Stats().Enqueued; got != 10 {
		t.Fatalf("%d records enqueued, want 10", got)
	}
}

// countSink takes batches and keeps only their count, so that it holds no memory of its own.
type countSink struct{ n atomic.Int64 }

func (s *countSink) InsertUsage(_ context.Context, recs []store.UsageRecord) (int, error) {
	s.n.Add(int64(len(recs)))
	return len(recs), nil
}

// liveHeap is the heap in use after collections: two, because sync.Pool keeps what it held
// through the first.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestIdleRecorderHoldsLittleHeap: a started recorder with the default queue and batch size, and
// the gateway's two writers, holds little memory while nothing is recorded, also after a burst
// of records has been written: the queue and the writers' batches grow with what they hold and
// are let go when idle, instead of being made whole up front (the queue's 65,536 slots and a
// batch of 5,000 records per writer: some 5 MB).
func TestIdleRecorderHoldsLittleHeap(t *testing.T) {
	const bound = 256 << 10
	sink := &countSink{}
	opts := spoolOpts(t)
	opts.Writers = DefaultWriters
	before := liveHeap()
	r := mustNew(t, sink, opts)
	defer closeRecorder(t, r, 10*time.Second)
	time.Sleep(10 * opts.FlushInterval) // the writers start and tick
	if got := liveHeap() - before; got > bound {
		t.Fatalf("a started, idle recorder holds %.1f KB of heap; want at most %d KB", float64(got)/1024, bound>>10)
	}
	const n = 20000
	for i := range n {
		if !r.Record(rec(i)) {
			t.Fatalf("record %d not taken", i)
		}
	}
	waitFor(t, 10*time.Second, "the burst written", func() bool { return sink.n.Load() == n })
	time.Sleep(10 * opts.FlushInterval) // idle ticks
	if got := liveHeap() - before; got > bound {
		t.Fatalf("an idle recorder holds %.1f KB of heap after a burst of %d records; want at most %d KB", float64(got)/1024, n, bound>>10)
	}
	if s := r.Stats(); s.Written != n || s.Spooled != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v; want %d written, none spooled or dropped", s, n)
	}
}
