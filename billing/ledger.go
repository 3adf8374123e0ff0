package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// UsageWriter persists batches of usage records (the store).
type UsageWriter interface {
	InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error)
}

// Ledger is the usage writer in front of the store. The gateway names the payer of each record
// from the guard's decision at admission; a record to be charged that names none was admitted
// while the guard could not read the ledger (fail-open), or written to the spool by a version
// that left the choice to the store. Ledger names its payer by the same rule (choosePayer),
// reading the ledger itself, before the store persists what every record says.
type Ledger struct {
	w UsageWriter
	r LedgerReader
}

// NewLedger returns a Ledger writing to w and reading credit accounts from r (usually both the
// store).
func NewLedger(w UsageWriter, r LedgerReader) *Ledger { return &Ledger{w: w, r: r} }

// InsertUsage names the missing payers, then writes the batch. A payer that cannot be read fails
// the batch, to be written again later, as a store that cannot be reached would.
func (l *Ledger) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	type subject struct {
		kind quota.Kind
		id   string
	}
	var (
		known  map[subject]bool
		copied bool
		err    error
	)
	for i := range recs {
		r := &recs[i]
		if !r.Charge || r.CostPicoUSD == nil || r.PayerType != "" {
			continue
		}
		if known == nil {
			known = map[subject]bool{}
		}
		kind, id, ok := choosePayer(r.UserID, r.TenantID, func(kind quota.Kind, id string) (bool, bool) {
			s := subject{kind, id}
			if has, ok := known[s]; ok {
				return has, true
			}
			_, e := l.r.CreditAccountOf(ctx, string(kind), id)
			switch {
			case errors.Is(e, store.ErrNotFound):
				known[s] = false
				return false, true
			case e != nil:
				err = e
				return false, false
			}
			known[s] = true
			return true, true
		})
		if !ok {
			return 0, fmt.Errorf("billing: payer of request %s: %w", r.RequestID, err)
		}
		if kind == "" {
			continue // nobody has an account: nothing is charged
		}
		if !copied { // the caller's batch stays as it was given
			recs, copied = append([]store.UsageRecord(nil), recs...), true
			r = &recs[i]
		}
		r.PayerType, r.PayerID = string(kind), id
	}
	return l.w.InsertUsage(ctx, recs)
}
