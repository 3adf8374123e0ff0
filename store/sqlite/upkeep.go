package sqlite

import (
	"context"
	"fmt"

	"github.com/llmgate/llmgate/store"
)

// retentionBatch is how many rows one retention DELETE removes, and retentionBatches how many
// such deletes one pass runs at most (the rest waits for the next pass): each delete holds the
// one writer connection, so the ledger's batches get their turn in between.
const (
	retentionBatch   = 5000
	retentionBatches = 200
)

// UpkeepUsage is the periodic housekeeping of usage_records. SQLite has no partitions to make, so
// it only applies retention: with retentionMonths > 0 it deletes, in bounded batches, the records
// that started before store.RetentionHorizon. Several processes sharing the file may run it at
// once; each delete takes the write lock in turn.
func (s *Store) UpkeepUsage(ctx context.Context, retentionMonths int) (store.UsageUpkeep, error) {
	var res store.UsageUpkeep
	if retentionMonths <= 0 {
		return res, nil
	}
	horizon := micros(store.RetentionHorizon(s.now(), retentionMonths))
	for range retentionBatches {
		r, err := s.w.ExecContext(ctx, `DELETE FROM usage_records WHERE rowid IN (
			SELECT rowid FROM usage_records WHERE started_at < ? LIMIT ?)`, horizon, retentionBatch)
		if err != nil {
			return res, fmt.Errorf("sqlite: delete old usage records: %w", err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return res, fmt.Errorf("sqlite: delete old usage records: %w", err)
		}
		res.Deleted += n
		if n < retentionBatch {
			break
		}
	}
	return res, nil
}
