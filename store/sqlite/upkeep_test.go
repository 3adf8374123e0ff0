package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// TestUpkeepRetention: records that started before the horizon are deleted, in several bounded
// deletes when there are many; the rest stay; without a retention nothing is deleted.
func TestUpkeepRetention(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	now := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	horizon := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) // retention 2: April, May, June kept
	old := 2*retentionBatch + 3
	var recs []store.UsageRecord
	for i := range old {
		ts := horizon.Add(-time.Duration(i+1) * time.Minute)
		recs = append(recs, store.UsageRecord{RequestID: fmt.Sprintf("old-%d", i), Status: 200, StartedAt: ts, EndedAt: ts})
	}
	for i, ts := range []time.Time{horizon, horizon.AddDate(0, 1, 3), now} {
		recs = append(recs, store.UsageRecord{RequestID: fmt.Sprintf("new-%d", i), Status: 200, StartedAt: ts, EndedAt: ts})
	}
	if n, err := s.InsertUsage(ctx, recs); err != nil || n != len(recs) {
		t.Fatalf("InsertUsage = %d, %v", n, err)
	}

	if res, err := s.UpkeepUsage(ctx, 0); err != nil || res.Deleted != 0 {
		t.Fatalf("UpkeepUsage without retention = %+v, %v; want nothing deleted", res, err)
	}
	res, err := s.UpkeepUsage(ctx, 2)
	if err != nil || res.Deleted != int64(old) || len(res.Created)+len(res.Dropped) != 0 {
		t.Fatalf("UpkeepUsage = %+v, %v; want %d rows deleted and no partitions", res, err, old)
	}
	var left int
	var oldest int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), min(started_at) FROM usage_records`).Scan(&left, &oldest); err != nil {
		t.Fatal(err)
	}
	if left != 3 || fromMicros(oldest) != horizon {
		t.Errorf("%d records left, oldest %s; want 3, oldest %s", left, fromMicros(oldest), horizon)
	}
}
