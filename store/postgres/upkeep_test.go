package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// TestUpkeepMakesPartitionsWithoutRestart: a store whose clock runs five months past its Migrate
// makes the missing partitions on its next upkeep, moves the rows DEFAULT caught for them, and
// later records of those months land in their own partition.
func TestUpkeepMakesPartitionsWithoutRestart(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	now = time.Date(2027, 4, 2, 8, 0, 0, 0, time.UTC) // five months on, no restart
	early := store.UsageRecord{RequestID: "r-early", Status: 200, StartedAt: now, EndedAt: now}
	if n, err := s.InsertUsage(ctx, []store.UsageRecord{early}); err != nil || n != 1 {
		t.Fatalf("InsertUsage = %d, %v", n, err)
	}
	if got := rowPartition(t, s, "r-early"); got != "usage_records_default" {
		t.Fatalf("record before the upkeep is in %q, want usage_records_default", got)
	}

	res, err := s.UpkeepUsage(ctx, 0)
	if err != nil {
		t.Fatalf("UpkeepUsage: %v", err)
	}
	want := []string{"usage_records_p202704", "usage_records_p202705", "usage_records_p202706", "usage_records_p202707"}
	if !slices.Equal(res.Created, want) || res.Skipped || len(res.Dropped) != 0 || res.Deleted != 0 {
		t.Errorf("UpkeepUsage = %+v, want created %v and nothing else", res, want)
	}
	if got := rowPartition(t, s, "r-early"); got != "usage_records_p202704" {
		t.Errorf("record written before the upkeep is in %q, want usage_records_p202704", got)
	}
	later := now.Add(24 * time.Hour)
	rec := store.UsageRecord{RequestID: "r-later", Status: 200, StartedAt: later, EndedAt: later}
	if n, err := s.InsertUsage(ctx, []store.UsageRecord{rec}); err != nil || n != 1 {
		t.Fatalf("InsertUsage = %d, %v", n, err)
	}
	if got := rowPartition(t, s, "r-later"); got != "usage_records_p202704" {
		t.Errorf("record written after the upkeep is in %q, want usage_records_p202704", got)
	}

	// Nothing left to do: a second pass makes nothing.
	if res, err := s.UpkeepUsage(ctx, 0); err != nil || len(res.Created) != 0 {
		t.Errorf("second UpkeepUsage = %+v, %v; want nothing created", res, err)
	}
}

// TestUpkeepRetention: partitions of the store's naming whose month lies wholly before the
// horizon are dropped; newer ones, DEFAULT and a partition the operator made under another name
// stay; DEFAULT's rows older than the horizon are deleted and its newer rows kept.
func TestUpkeepRetention(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	if err := s.Migrate(ctx); err != nil { // p202601..p202604
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE usage_records_archive PARTITION OF usage_records
		FOR VALUES FROM ('2024-01-01T00:00:00Z') TO ('2024-02-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	at := func(y int, m time.Month) time.Time { return time.Date(y, m, 15, 12, 0, 0, 0, time.UTC) }
	recs := []store.UsageRecord{
		{RequestID: "jan", StartedAt: at(2026, 1)},     // p202601: dropped
		{RequestID: "mar", StartedAt: at(2026, 3)},     // p202603: dropped
		{RequestID: "apr", StartedAt: at(2026, 4)},     // p202604: kept
		{RequestID: "old", StartedAt: at(2025, 6)},     // DEFAULT, before the horizon: deleted
		{RequestID: "may", StartedAt: at(2026, 5)},     // DEFAULT, after it: kept
		{RequestID: "archive", StartedAt: at(2024, 1)}, // operator's partition: kept
		{RequestID: "future", StartedAt: at(2027, 1)},  // DEFAULT: kept
	}
	for i := range recs {
		recs[i].Status, recs[i].EndedAt = 200, recs[i].StartedAt
	}
	if n, err := s.InsertUsage(ctx, recs); err != nil || n != len(recs) {
		t.Fatalf("InsertUsage = %d, %v", n, err)
	}

	now = time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	res, err := s.UpkeepUsage(ctx, 2) // keep June, May and April
	if err != nil {
		t.Fatalf("UpkeepUsage: %v", err)
	}
	wantDropped := []string{"usage_records_p202601", "usage_records_p202602", "usage_records_p202603"}
	if !slices.Equal(res.Dropped, wantDropped) || res.Deleted != 1 {
		t.Errorf("UpkeepUsage dropped %v and deleted %d rows, want %v and 1", res.Dropped, res.Deleted, wantDropped)
	}
	for _, name := range wantDropped {
		if partitionOf(t, s, name) != "" {
			t.Errorf("%s still exists", name)
		}
	}
	for _, name := range []string{"usage_records_default", "usage_records_archive", "usage_records_p202604",
		"usage_records_p202606", "usage_records_p202609"} {
		if partitionOf(t, s, name) != "usage_records" {
			t.Errorf("%s is gone", name)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT request_id FROM usage_records ORDER BY request_id`)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"apr", "archive", "future", "may"}; !slices.Equal(left, want) {
		t.Errorf("records left %v, want %v", left, want)
	}
}

// TestUpkeepRetentionBatches: DEFAULT's old rows go in several bounded deletes, all of them.
func TestUpkeepRetentionBatches(t *testing.T) {
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	now := time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 3*retentionBatch + 7
	recs := make([]store.UsageRecord, n)
	for i := range recs {
		ts := old.Add(time.Duration(i) * time.Second)
		recs[i] = store.UsageRecord{RequestID: "old-" + ts.Format("150405"), Status: 200, StartedAt: ts, EndedAt: ts}
	}
	if got, err := s.InsertUsage(ctx, recs); err != nil || got != n {
		t.Fatalf("InsertUsage = %d, %v", got, err)
	}
	res, err := s.UpkeepUsage(ctx, 1)
	if err != nil || res.Deleted != int64(n) {
		t.Fatalf("UpkeepUsage = %+v, %v; want %d rows deleted", res, err, n)
	}
}

// TestUpkeepConcurrent: replicas with their own pools running upkeep (and one a Migrate) at once
// on one database neither fail nor wait on each other for long, and the partitions get made.
func TestUpkeepConcurrent(t *testing.T) {
	dsn := pg.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Date(2027, 9, 1, 0, 0, 0, 0, time.UTC)
	stores := make([]*Store, 3)
	for i := range stores {
		stores[i] = open(t, dsn)
		stores[i].now = func() time.Time { return now }
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.AddDate(0, 5, 0)
	var wg sync.WaitGroup
	errs := make([]error, len(stores)+1)
	skipped := make([]int, len(stores))
	for i, s := range stores {
		wg.Go(func() {
			for range 10 {
				res, err := s.UpkeepUsage(ctx, 3)
				if err != nil {
					errs[i] = err
					return
				}
				if res.Skipped {
					skipped[i]++
				}
			}
		})
	}
	wg.Go(func() { errs[len(stores)] = stores[1].Migrate(ctx) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent upkeep: %v", err)
	}
	// Once they are done the lock is free again, and the result is whole whoever did the work.
	if res, err := stores[2].UpkeepUsage(ctx, 3); err != nil || res.Skipped {
		t.Fatalf("UpkeepUsage after the others = %+v, %v; want it to run", res, err)
	}
	for _, m := range []string{"202802", "202803", "202804", "202805"} {
		if partitionOf(t, stores[0], "usage_records_p"+m) != "usage_records" {
			t.Errorf("partition %s missing after concurrent upkeep", m)
		}
	}
	if partitionOf(t, stores[0], "usage_records_p202709") != "" {
		t.Errorf("p202709 outlived a three-month retention")
	}
	t.Logf("passes skipped for the lock, per store: %v", skipped)
}
