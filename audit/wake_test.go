package audit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Records wait in the queue until a whole batch is there or FlushInterval's tick comes: a writer
// that took each one as it arrived would be woken once per request. A whole batch is written
// without waiting for the tick, also when several writers share the queue (each holding part of
// it, none would have a whole batch).
func TestWriterWakesPerBatchNotPerRecord(t *testing.T) {
	for _, writers := range []int{1, 2} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) { testWriterWakes(t, writers) })
	}
}

func testWriterWakes(t *testing.T, writers int) {
	sink := &collectSink{seen: map[string]bool{}}
	opts := spoolOpts(t)
	opts.BatchSize, opts.FlushInterval, opts.Writers = 100, time.Hour, writers
	r := mustNew(t, sink, opts)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(ctx)
	}()
	for i := range 99 {
		r.Record(rec(i))
	}
	time.Sleep(100 * time.Millisecond)
	if n := r.q.len(); n != 99 {
		t.Errorf("%d of 99 records still queued before a whole batch; want all (a writer took them one by one)", n)
	}
	r.Record(rec(99))
	deadline := time.Now().Add(10 * time.Second)
	for {
		sink.mu.Lock()
		n := len(sink.seen)
		sink.mu.Unlock()
		if n == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of a whole batch of 100 written 10 s after it was queued", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A batch larger than the queue can hold still gets written before the queue fills: a writer is
// kicked at half the queue, so nothing spools for want of a writer.
func TestBatchLargerThanQueue(t *testing.T) {
	sink := &collectSink{seen: map[string]bool{}}
	opts := spoolOpts(t)
	opts.QueueSize, opts.BatchSize, opts.FlushInterval = 10, 100, time.Hour
	r := mustNew(t, sink, opts)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(ctx)
	}()
	for i := range 30 {
		r.Record(rec(i))
		time.Sleep(2 * time.Millisecond) // room for a kicked writer to take the queue
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sink.mu.Lock()
		n := len(sink.seen)
		sink.mu.Unlock()
		if n >= 25 || time.Now().After(deadline) {
			if s := r.Stats(); s.Spooled != 0 || n < 25 {
				t.Fatalf("%d of 30 records written and %d spooled with a queue of 10 and batches of 100; want the queue taken before it fills", n, s.Spooled)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
