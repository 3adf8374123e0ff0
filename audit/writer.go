package audit

import (
	"context"
	"time"

	"github.com/llmgate/llmgate/store"
)

// run is batch writer id (one of Options.Writers, which take from the channel in parallel): on
// FlushInterval's tick, or when Record finds a whole batch queued, it takes what the channel
// holds in batches of up to BatchSize and writes them, until Close; then it drains the channel
// (drain) with the other writers.
func (r *Recorder) run(id int) {
	defer func() {
		r.life.Lock()
		r.live--
		r.life.Unlock()
	}()
	batch := make([]store.UsageRecord, 0, r.opts.BatchSize)
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
		select {
		case <-r.stop:
			r.drain(id, batch)
			return
		case <-r.kick:
		case <-tick.C:
		}
		for {
			batch = r.take(batch)
			if len(batch) == 0 {
				break
			}
			full := len(batch) == r.opts.BatchSize
			if full && len(r.ch) >= r.kickAt {
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

// take appends to batch, up to BatchSize, the records queued now, without waiting for more.
func (r *Recorder) take(batch []store.UsageRecord) []store.UsageRecord {
	for len(batch) < r.opts.BatchSize {
		select { // not len(r.ch) then a receive: another writer may take the last record between
		case p := <-r.ch:
			batch = dequeue(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// drain writes the current batch and everything in the channel under Close's context. Nothing
// sends on the channel any more (Close set closed first), so an empty channel is the end.
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
