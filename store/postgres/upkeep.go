package postgres

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/llmgate/llmgate/store"
)

// upkeepLockTimeout bounds how long one upkeep statement waits for a table lock. Making or
// dropping a partition needs a strong lock on usage_records, and while it waits the ledger's
// writes queue behind it; past this the pass fails, is counted, and the next one tries again.
const upkeepLockTimeout = "3s"

// retentionBatch is how many DEFAULT-partition rows one retention DELETE removes, and
// retentionBatches how many such deletes one pass runs at most (the rest waits for the next
// pass), so no single statement holds locks or bloats WAL for long.
const (
	retentionBatch   = 5000
	retentionBatches = 200
)

// partitionName is the name the store gives the partition of the month starting at from. Only
// tables of this form are ever dropped for retention.
func partitionName(from time.Time) string {
	return fmt.Sprintf("usage_records_p%04d%02d", from.Year(), from.Month())
}

var partitionNameRE = regexp.MustCompile(`^usage_records_p([0-9]{4})([0-9]{2})$`)

// UpkeepUsage is the periodic housekeeping of usage_records, meant to run at start and every few
// hours on every replica. It makes the monthly partitions from the current month to
// partitionsAhead months later (moving rows DEFAULT caught for them, as Migrate does), and with
// retentionMonths > 0 drops the store's monthly partitions whose month ended before
// store.RetentionHorizon and deletes older rows from the DEFAULT partition in bounded batches.
// Partitions not named by the store's scheme, and DEFAULT itself, are never dropped.
//
// It takes Migrate's advisory lock without waiting: when another replica holds it (its upkeep or
// a migration, which makes the same partitions), the pass does nothing and reports Skipped.
func (s *Store) UpkeepUsage(ctx context.Context, retentionMonths int) (store.UsageUpkeep, error) {
	var res store.UsageUpkeep
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("postgres: upkeep: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, migrateLockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("postgres: upkeep lock: %w", err)
	}
	if !locked {
		res.Skipped = true
		return res, nil
	}
	defer func() {
		// As in Migrate: neither the lock nor the session's lock_timeout may outlive this call on
		// a pooled connection; if undoing them fails, the connection is dropped instead.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, fmt.Sprintf(`SELECT pg_advisory_unlock(%d); RESET lock_timeout`,
			migrateLockKey)); err != nil {
			conn.Conn().Close(uctx)
		}
	}()
	if _, err := conn.Exec(ctx, `SET lock_timeout = '`+upkeepLockTimeout+`'`); err != nil {
		return res, fmt.Errorf("postgres: upkeep: %w", err)
	}

	now := s.now()
	res.Created, err = ensurePartitions(ctx, conn.Conn(), now)
	if err != nil || retentionMonths <= 0 {
		return res, err
	}
	horizon := store.RetentionHorizon(now, retentionMonths)

	rows, err := conn.Query(ctx, `SELECT c.relname, c.oid::regclass::text FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'usage_records'::regclass ORDER BY c.relname`)
	if err != nil {
		return res, fmt.Errorf("postgres: list partitions: %w", err)
	}
	type part struct{ name, ref string }
	var old []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.name, &p.ref); err != nil {
			rows.Close()
			return res, fmt.Errorf("postgres: list partitions: %w", err)
		}
		m := partitionNameRE.FindStringSubmatch(p.name)
		if m == nil {
			continue
		}
		from, err := time.Parse("200601", m[1]+m[2])
		if err != nil || partitionName(from) != p.name {
			continue // not a month the store would have named this way (e.g. month 13)
		}
		if !from.AddDate(0, 1, 0).After(horizon) {
			old = append(old, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("postgres: list partitions: %w", err)
	}
	for _, p := range old {
		// p.ref is the catalog's own quoted, schema-qualified-if-needed name of a table whose name
		// matched the store's scheme above.
		if _, err := conn.Exec(ctx, `DROP TABLE `+p.ref); err != nil {
			return res, fmt.Errorf("postgres: drop partition %s: %w", p.name, err)
		}
		res.Dropped = append(res.Dropped, p.name)
	}

	for range retentionBatches {
		tag, err := conn.Exec(ctx, `DELETE FROM usage_records_default WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM usage_records_default WHERE started_at < $1 LIMIT $2))`, horizon, retentionBatch)
		if err != nil {
			return res, fmt.Errorf("postgres: delete old rows of usage_records_default: %w", err)
		}
		res.Deleted += tag.RowsAffected()
		if tag.RowsAffected() < retentionBatch {
			break
		}
	}
	return res, nil
}
