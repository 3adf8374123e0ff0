package audit

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/llmgate/llmgate/store"
)

// ErrRejected marks a Sink error as a refusal of the data itself, which no retry will change: a
// constraint or data error, not a connection, timeout or server-state error. A batch failing with
// it is split to isolate the records at fault; each of those is dead-lettered alone and the rest
// commits. A Sink says so by wrapping ErrRejected, or by implementing RejectClassifier.
//
// Without either, an error is classified as rejected when its chain holds
//   - a PostgreSQL error (anything with a SQLState() method, as *pgconn.PgError) of class 22
//     (data exception: bad encoding such as a NUL byte in text, out-of-range numbers) or 23
//     (integrity constraint violation: NOT NULL, CHECK, foreign key, a unique index other than
//     the idempotency key, which the Sink skips by itself);
//   - a SQLite error (anything with a Code() int method, as modernc.org/sqlite's *Error) whose
//     primary code is SQLITE_TOOBIG, SQLITE_CONSTRAINT or SQLITE_MISMATCH.
//
// Everything else is transient, including context errors and schema errors (class 42: a missing
// table is fixed by a migration, not by dead-lettering every record), so those records are kept
// in the spool and tried again.
var ErrRejected = errors.New("audit: records rejected by the store")

// RejectClassifier is an optional interface of a Sink that classifies its own errors: Rejected
// reports whether err means the batch's data can never be written (see ErrRejected).
type RejectClassifier interface {
	Rejected(err error) bool
}

// classifier returns the rejection test for sink.
func classifier(sink Sink) func(error) bool {
	c, ok := sink.(RejectClassifier)
	return func(err error) bool {
		switch {
		case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return false
		case errors.Is(err, ErrRejected):
			return true
		case ok:
			return c.Rejected(err)
		}
		return isDataError(err)
	}
}

// isDataError is the default classification of ErrRejected, by duck typing so this package
// depends on neither database driver.
func isDataError(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		code := pg.SQLState()
		return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23")
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff { // the primary result code; extended codes add high bits
		case 18, 19, 20: // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH
			return true
		}
	}
	return false
}

// commit writes recs into the Sink once (no retry). A rejected batch is split in halves,
// recursively, until each rejected record is alone: those come back as poison, to dead-letter,
// and everything else is committed, so one bad record costs about 2·log2(len) extra calls. On a
// transient error it returns the records not yet committed (rest) and the error; poison found
// before that is returned too. ctx bounds the whole call; each Sink call also gets WriteTimeout.
func (r *Recorder) commit(ctx context.Context, recs []store.UsageRecord) (
	rest []store.UsageRecord, poison []deadEntry, err error) {
	if len(recs) == 0 {
		return nil, nil, nil
	}
	if err := ctx.Err(); err != nil {
		return recs, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.WriteTimeout)
	start := time.Now()
	_, err = r.sink.InsertUsage(cctx, recs)
	cancel()
	r.metrics.observe(time.Since(start))
	if err == nil {
		r.written.Add(int64(len(recs)))
		return nil, nil, nil
	}
	r.writeErrors.Add(1)
	if ctx.Err() != nil || !r.classify(err) {
		return recs, nil, err
	}
	if len(recs) == 1 {
		rec := recs[0]
		return nil, []deadEntry{{Reason: reasonRejected, Error: err.Error(), Record: &rec}}, nil
	}
	mid := len(recs) / 2
	restL, poisonL, err := r.commit(ctx, recs[:mid])
	if err != nil {
		return append(append([]store.UsageRecord(nil), restL...), recs[mid:]...), poisonL, err
	}
	restR, poisonR, err := r.commit(ctx, recs[mid:])
	return restR, append(poisonL, poisonR...), err
}
