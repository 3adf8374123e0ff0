package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// copyUsageSQL COPYs a batch into usage_in in PostgreSQL's binary format, which appendUsageCopy
// writes.
var copyUsageSQL = `COPY usage_in (` + strings.Join(usageInColumns, ", ") + `) FROM STDIN (FORMAT binary)`

// copyUsage writes the batch into usage_in with one COPY. The rows are encoded here rather than by
// pgx.CopyFrom: that takes each of a batch's 135,000 values (5,000 rows of 29 columns) through an
// interface and a lookup of its encoding plan, some 8 ms of CPU a batch on this machine's cores,
// against about 1 ms for appending the bytes of the column types below, known in advance.
//
// The stream's buffer (some 2 MB for 5,000 rows) is reused from batch to batch: made anew each
// time, the zeroing of its fresh pages took 28 % of the writer process's CPU in the ledger bench.
func copyUsage(ctx context.Context, tx pgx.Tx, recs []store.UsageRecord) error {
	bp := copyBufs.Get().(*[]byte)
	*bp = appendUsageCopy((*bp)[:0], recs)
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(*bp), copyUsageSQL)
	// Only a COPY that succeeded gives its buffer back: pgconn reads the stream on a goroutine of
	// its own, which some of CopyFrom's error returns do not wait for, so after an error it may
	// still be reading the buffer.
	if err == nil && cap(*bp) <= maxPooledCopy {
		copyBufs.Put(bp)
	}
	return err
}

// copyBufs holds COPY streams' buffers for reuse; one larger than maxPooledCopy (a batch of
// over some 20,000 rows) is left to the collector rather than kept.
var copyBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledCopy = 8 << 20

// appendUsageCopy appends the binary COPY stream of recs to buf: the header, one tuple per record
// with the fields of usageInColumns in order, and the trailer. The field encodings are those of
// the columns' types (https://www.postgresql.org/docs/15/sql-copy.html, "Binary Format", and each
// type's send function): text as its bytes, integer and bigint big-endian, boolean one byte,
// timestamptz as microseconds since 2000-01-01 UTC (as pgx encodes a time.Time, truncated to the
// microsecond), NULL as length −1. A column whose type changes must change here too; the store
// tests round-trip every field.
func appendUsageCopy(buf []byte, recs []store.UsageRecord) []byte {
	const (
		fields      = 36 // len(usageInColumns)
		y2kMicros   = 946_684_800 * 1_000_000
		nullLength  = math.MaxUint32 // −1 as an int32
		textPerRow  = 160            // typical total of the text fields' bytes, to size buf once
		fixedPerRow = 2 + fields*4 + 1 + 4 + 10*8 + 1
	)
	buf = slices.Grow(buf, 19+len(recs)*(fixedPerRow+textPerRow)+2)
	buf = append(buf, "PGCOPY\n\xff\r\n\x00"...)
	buf = binary.BigEndian.AppendUint32(buf, 0) // flags: no OIDs
	buf = binary.BigEndian.AppendUint32(buf, 0) // header extension length
	text := func(s string) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	bigint := func(v int64) {
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(v))
	}
	boolean := func(v bool) {
		b := byte(0)
		if v {
			b = 1
		}
		buf = append(binary.BigEndian.AppendUint32(buf, 1), b)
	}
	timestamptz := func(t time.Time) {
		bigint(t.UnixMicro() - y2kMicros)
	}
	for i := range recs {
		r := &recs[i]
		buf = binary.BigEndian.AppendUint16(buf, fields)
		text(r.RequestID)
		text(r.ClientRequestID)
		text(r.TraceID)
		text(r.KeyID)
		text(r.UserID)
		text(r.TenantID)
		text(r.SessionID)
		text(r.Model)
		text(r.UpstreamModel)
		text(r.Provider)
		text(r.Deployment)
		text(r.Endpoint)
		boolean(r.Stream)
		buf = binary.BigEndian.AppendUint32(buf, 4) // status: integer
		buf = binary.BigEndian.AppendUint32(buf, uint32(int32(r.Status)))
		text(r.ErrorType)
		bigint(r.PromptTokens)
		bigint(r.CompletionTokens)
		bigint(r.CachedTokens)
		bigint(r.ReasoningTokens)
		text(r.UsageSource)
		if r.CostPicoUSD == nil {
			buf = binary.BigEndian.AppendUint32(buf, nullLength)
		} else {
			bigint(*r.CostPicoUSD)
		}
		text(r.PriceVersion)
		bigint(r.LatencyMS)
		bigint(r.TTFTMS)
		timestamptz(r.StartedAt)
		timestamptz(r.EndedAt)
		bigint(r.Units)
		text(r.Unit)
		text(r.ServedModel)
		text(r.ReplayOf)
		text(r.Experiment)
		text(r.Variant)
		bigint(r.CacheWriteTokens)
		boolean(r.Charge)
		text(r.PayerType)
		text(r.PayerID)
	}
	return binary.BigEndian.AppendUint16(buf, math.MaxUint16) // trailer: −1 as an int16
}
