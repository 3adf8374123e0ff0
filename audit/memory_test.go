package audit

import (
	"runtime"
	"testing"
	"time"
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
