package audit

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/llmgate/llmgate/store"
)

// errShut: Close took over while the replayer was busy; it leaves everything as it is.
var errShut = errors.New("audit: recorder closed")

// replayCursor is where a failed replay resumes in its segment, so a database that fails in the
// middle of a 64 MiB segment does not make the next attempt start over (starting over would be
// correct, the Sink being idempotent, only slower). It lives in memory: after a restart a
// segment replays from its start.
type replayCursor struct {
	seq uint64
	// off is the offset of the first frame not known to be committed or dead-lettered.
	off int64
	// deadTo: frames starting before it were already dead-lettered, not to be again.
	deadTo int64
}

// replayLoop replays the spool every ReplayInterval, and at once when a segment is sealed or the
// database answers again, until ctx ends (Close).
func (r *Recorder) replayLoop(ctx context.Context) {
	defer close(r.replayDone)
	t := time.NewTicker(r.opts.ReplayInterval)
	defer t.Stop()
	failing := false
	for {
		n, err := r.replayAll(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, errShut):
			return
		case err != nil && !failing:
			failing = true
			r.log.Warn("usage spool replay failed; retrying every replay_interval", "err", err,
				"interval", r.opts.ReplayInterval)
		case err == nil && (failing || n > 0):
			failing = false
			segs, bytes := r.spool.backlog()
			r.log.Info("usage spool replayed", "records", n, "segments_left", segs, "bytes_left", bytes)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.replayWake:
		}
	}
}

// replayAll replays sealed segments oldest first until none is left or one fails, then seals the
// active segment (at most once per call, so continuous overflow does not turn into a stream of
// tiny segments) and replays that too. It returns how many records were committed.
func (r *Recorder) replayAll(ctx context.Context) (int, error) {
	total, sealed := 0, false
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		seg, ok := r.spool.oldest()
		if !ok {
			if sealed || !r.spool.sealIfIdle() {
				return total, nil
			}
			sealed = true
			continue
		}
		n, err := r.replaySegment(ctx, seg)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// replaySegment commits a segment's records in batches, dead-letters what cannot be decoded or
// is rejected, and deletes the segment once all of it is done. A transient failure leaves the
// segment in place and the cursor at the first batch not committed.
func (r *Recorder) replaySegment(ctx context.Context, seg segment) (int, error) {
	var start, deadTo int64
	if r.cursor.seq == seg.seq {
		start, deadTo = r.cursor.off, r.cursor.deadTo
	}
	sr, err := openSegment(seg.path, start)
	switch {
	case errors.Is(err, errEmptySegment), errors.Is(err, fs.ErrNotExist):
		return 0, r.finishSegment(seg)
	case errors.Is(err, errBadMagic):
		if err := r.deadLetter([]deadEntry{{Reason: reasonBadSegment, Error: err.Error(),
			Segment: filepath.Base(seg.path), copyFrom: seg.path}}); err != nil {
			return 0, err
		}
		return 0, r.finishSegment(seg)
	case err != nil:
		return 0, err
	}
	defer sr.close()

	committed := 0
	batch := make([]store.UsageRecord, 0, r.opts.BatchSize)
	batchOff := sr.off
	var dead []deadEntry
	seen := deadTo // frames dead-lettered by this pass start before seen
	flush := func() error {
		rest, poison, err := r.commit(ctx, batch)
		committed += len(batch) - len(rest) - len(poison)
		r.replayed.Add(int64(len(batch) - len(rest) - len(poison)))
		if derr := r.deadLetter(append(dead, poison...)); derr != nil {
			return derr
		}
		dead = nil
		if err != nil {
			r.cursor = replayCursor{seq: seg.seq, off: batchOff, deadTo: seen}
			return err
		}
		if len(batch) > 0 && r.down.CompareAndSwap(true, false) {
			r.log.Info("usage database answers again (replay)")
		}
		batch, batchOff = batch[:0], sr.off
		return nil
	}
	for {
		payload, off, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var fe *frameError
		if errors.As(err, &fe) {
			// The reader has skipped the damage: only what it spans is set aside, and the
			// records after it replay.
			if fe.Off >= deadTo {
				e := deadEntry{Reason: reasonTornTail, Error: fe.Error(), Segment: filepath.Base(seg.path),
					Offset: fe.Off, copyFrom: seg.path}
				if fe.End < sr.size {
					e.Reason, e.copyLen = reasonDamaged, fe.End-fe.Off
				}
				dead = append(dead, e)
				seen = fe.Off + 1
			}
			continue
		}
		if err != nil {
			r.cursor = replayCursor{seq: seg.seq, off: batchOff, deadTo: deadTo}
			return committed, err // an I/O error: try again later
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			if off >= deadTo {
				dead = append(dead, undecodable(seg, off, payload, err))
				seen = off + 1
			}
			continue
		}
		batch = append(batch, rec)
		if len(batch) >= r.opts.BatchSize {
			if err := flush(); err != nil {
				return committed, err
			}
		}
	}
	if err := flush(); err != nil {
		return committed, err
	}
	return committed, r.finishSegment(seg)
}

// deadLetter writes entries unless Close has taken over.
func (r *Recorder) deadLetter(entries []deadEntry) error {
	if len(entries) == 0 {
		return nil
	}
	r.life.Lock()
	defer r.life.Unlock()
	if r.shut {
		return errShut
	}
	r.dead.write(entries)
	return nil
}

// finishSegment deletes a fully replayed segment unless Close has taken over.
func (r *Recorder) finishSegment(seg segment) error {
	r.life.Lock()
	defer r.life.Unlock()
	if r.shut {
		return errShut
	}
	r.cursor = replayCursor{}
	return r.spool.remove(seg)
}
