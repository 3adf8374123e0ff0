package audit

import (
	"context"
	"slices"
	"time"

	"github.com/llmgate/llmgate/store"
)

// run is batch writer id (one of Options.Writers, which take from the queue in parallel): on
// FlushInterval's tick, or when Record finds a whole batch queued, it takes what the queue holds
// in batches of up to BatchSize and writes them, until Close; then it drains the queue (drain)
// with the other writers. Its batch grows with what it takes and, like the queue's ring, is let
// go when a tick finds nothing queued, so an idle gateway does not hold a batch's room (some
// 2.4 MB at the default BatchSize) per writer.
func (r *Recorder) run(id int) {
	defer func() {
		r.life.Lock()
		r.live--
		r.life.Unlock()
	}()
	var batch []store.UsageRecord
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	for {
		// stop first: once Close has begun, batches are written under its deadline (drain).
		select {
		case <-r.stop:
			r.drain(id, batch)
			return
		default:
		}
		ticked := false
		select {
		case <-r.stop:
			r.drain(id, batch)
			return
		case <-r.kick:
		case <-tick.C:
			ticked = true
		}
		for {
			batch = r.take(batch)
			if len(batch) == 0 {
				if ticked { // idle: nothing came since the last batch
					batch = nil
					r.q.release()
				}
				break
			}
			ticked = false
			full := len(batch) == r.opts.BatchSize
			if full && r.q.len() >= r.kickAt {
				r.kickWriter() // another whole batch waits: a second writer may take it meanwhile
			}
			if !r.write(r.writeCtx, id, batch) {
				return
			}
			batch = batch[:0]
			if !full {
				break
			}
			select {
			case <-r.stop:
				r.drain(id, batch)
				return
			default:
			}
		}
	}
}

// takeChunk is how many records a writer takes from the queue per lock.
const takeChunk = 64

// take appends to batch, up to BatchSize, the records queued now, without waiting for more.
// batch is grown once to what is queued (within BatchSize) rather than doubling record by record.
func (r *Recorder) take(batch []store.UsageRecord) []store.UsageRecord {
	if want := min(r.opts.BatchSize, len(batch)+r.q.len()); want > cap(batch) {
		batch = slices.Grow(batch, want-len(batch))
	}
	var held [takeChunk]*store.UsageRecord
	for len(batch) < r.opts.BatchSize {
		k := r.q.pop(held[:min(takeChunk, r.opts.BatchSize-len(batch))])
		if k == 0 {
			break
		}
		for _, p := range held[:k] {
			batch = dequeue(batch, p)
		}
	}
	return batch
}

// takeAll appends to batch everything queued now, whatever its size.
func (r *Recorder) takeAll(batch []store.UsageRecord) []store.UsageRecord {
	var held [takeChunk]*store.UsageRecord
	for {
		k := r.q.pop(held[:])
		if k == 0 {
			return batch
		}
		for _, p := range held[:k] {
			batch = dequeue(batch, p)
		}
	}
}

// drain writes the current batch and everything in the queue under Close's context. Nothing
// pushes onto the queue any more (Close set closed first), so an empty queue is the end.
func (r *Recorder) drain(id int, batch []store.UsageRecord) {
	ctx := r.stopCtx
	for {
		batch = r.take(batch)
		if len(batch) == 0 {
			return
		}
		if !r.write(ctx, id, batch) {
			return
		}
		batch = batch[:0]
	}
}

// write commits one batch, retrying transient failures with exponential backoff, and spools what
// could not be committed. While the database is known to be down it spools at once, except for
// one probe attempt per ReplayInterval, so an outage costs the writer one disk append per batch
// instead of a round of retries. It reports false when Close has taken over (the caller exits).
// id is the writer's, whose slot of inflight holds the batch meanwhile.
func (r *Recorder) write(ctx context.Context, id int, batch []store.UsageRecord) bool {
	r.life.Lock()
	if r.shut {
		r.life.Unlock()
		return false
	}
	r.inflight[id] = batch
	r.busy++
	r.life.Unlock()

	attempts := 1 + r.opts.WriteRetries
	probe := false
	if r.spool != nil && r.down.Load() {
		now := time.Now().UnixNano()
		if next := r.nextProbe.Load(); now < next || !r.nextProbe.CompareAndSwap(next, now+int64(r.opts.ReplayInterval)) {
			attempts = 0
		} else {
			attempts, probe = 1, true
		}
	}
	if ctx.Err() != nil && r.spool != nil {
		attempts = 0 // Close's deadline has passed: spool, do not start a write that cannot finish
	}

	rest := batch
	var poison []deadEntry
	var err error
	backoff := 100 * time.Millisecond
	for i := 0; i < attempts; i++ {
		if i > 0 {
			r.log.Warn("usage batch write failed; retrying", "records", len(rest), "attempt", i, "err", err)
			if !sleepCtx(ctx, backoff) {
				break
			}
			backoff *= 2
		}
		var p []deadEntry
		rest, p, err = r.commit(ctx, rest)
		poison = append(poison, p...)
		if err == nil || ctx.Err() != nil {
			break
		}
	}

	r.life.Lock()
	defer r.life.Unlock()
	if r.shut {
		return false // Close spooled this batch itself
	}
	r.inflight[id] = nil
	r.busy--
	r.dead.write(poison)
	switch {
	case attempts > 0 && err == nil:
		if r.down.CompareAndSwap(true, false) {
			r.log.Info("usage database answers again; replaying the spool")
			r.wakeReplay()
		}
	case len(rest) == 0:
	case r.spool == nil:
		r.dropped.Add(int64(len(rest)))
		r.log.Error("usage batch lost after retries (no spool)", "records", len(rest), "err", err)
	default:
		if err != nil && !probe && ctx.Err() == nil {
			r.nextProbe.Store(time.Now().Add(r.opts.ReplayInterval).UnixNano())
			if !r.down.Swap(true) {
				r.log.Error("usage database down: spooling batches until it answers", "err", err)
			}
		}
		r.spoolLocked(rest, "database write failed")
	}
	return true
}

// sleepCtx sleeps for d or until ctx ends, reporting whether the whole d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
