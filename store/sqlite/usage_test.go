package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/migrations"
)

// TestUsageRecordsBTrees: a usage record outside any experiment is written into at most four
// B-trees (the table and its non-partial indexes), and the newest-first listings, whole or over a
// time range, read one index in order without sorting: the key that keeps records unique also
// orders them by time.
func TestUsageRecordsBTrees(t *testing.T) {
	s := openMigrated(t)
	indexes := queryStrings(t, s.r, `SELECT name FROM pragma_index_list('usage_records') WHERE NOT partial ORDER BY name`)
	if n := 1 + len(indexes); n > 4 {
		t.Errorf("an insert writes %d B-trees (the table and %v), want at most 4", n, indexes)
	}

	now := time.Now()
	for name, f := range map[string]store.UsageFilter{"all": {}, "from-to": {From: now.Add(-time.Hour), To: now},
		"after": {After: &store.UsageCursor{RequestID: "r", StartedAt: now}}} {
		q, args := listUsageQuery(f)
		plan := queryPlan(t, s.r, q, args...)
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "usage_records_started_idx") {
			t.Errorf("ListUsage %s: plan %q, want a read of usage_records_started_idx in order", name, plan)
		}
	}
}

// queryStrings is the one text column of q's rows.
func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryPlan is EXPLAIN QUERY PLAN's details for q, joined with " | ".
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, " | ")
}

// TestMigrationKeepsUsageRecords: the migrations after version 15, which rebuild usage_records,
// keep every row and column as it was, and a record written again is still skipped.
func TestMigrationKeepsUsageRecords(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "llmgate.db"))
	ms, err := migrations.SQLite()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.migrate(ctx, ms[:15]); err != nil { // Migrate stopped after version 15
		t.Fatal(err)
	}
	base := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	cost := int64(-42)
	recs := []store.UsageRecord{
		{RequestID: "r1", ClientRequestID: "c1", TraceID: "t1", KeyID: "k1", UserID: "u1", TenantID: "t",
			SessionID: "s1", Model: "m", UpstreamModel: "um", Provider: "p", Deployment: "d", Endpoint: "e",
			Stream: true, Status: 200, ErrorType: "x", PromptTokens: 1, CompletionTokens: 2, CachedTokens: 3,
			ReasoningTokens: 4, UsageSource: "provider", CostPicoUSD: &cost, PriceVersion: "v1", LatencyMS: 5,
			TTFTMS: 6, StartedAt: base, EndedAt: base.Add(time.Second), Units: 7, Unit: "image",
			ServedModel: "sm", ReplayOf: "r0", Experiment: "exp", Variant: "b", CacheWriteTokens: 8},
		// The same request id at another time is another record; no cost stays NULL.
		{RequestID: "r1", Status: 429, StartedAt: base.Add(time.Microsecond), EndedAt: base.Add(time.Millisecond)},
		{RequestID: "r2", Status: 500, StartedAt: base, EndedAt: base},
	}
	if n, err := s.InsertUsage(ctx, recs); err != nil || n != len(recs) {
		t.Fatalf("InsertUsage before the rebuild = %d, %v", n, err)
	}
	before := dumpUsage(t, s)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from version 15: %v", err)
	}
	if after := dumpUsage(t, s); !reflect.DeepEqual(after, before) {
		t.Errorf("rows after the rebuild:\n %v\nwant\n %v", after, before)
	}
	if n, err := s.InsertUsage(ctx, recs); err != nil || n != 0 {
		t.Errorf("InsertUsage of the same records after the rebuild = %d, %v; want 0 new", n, err)
	}
}

// dumpUsage is every usage_records row, every column as text (NULL as "NULL"), in key order.
func dumpUsage(t *testing.T, s *Store) []string {
	t.Helper()
	cols := strings.Split(strings.Join(strings.Fields(usageColumns), ""), ",")
	for i, c := range cols {
		cols[i] = fmt.Sprintf("quote(%s)", c)
	}
	out := queryStrings(t, s.r, `SELECT `+strings.Join(cols, " || '|' || ")+
		` FROM usage_records ORDER BY request_id, started_at`)
	if len(out) != 3 {
		t.Fatalf("%d usage records, want 3", len(out))
	}
	return out
}
