package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/storetest"
)

// Close must release every goroutine the store started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "llmgate.db"))
	})
}

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := New(context.Background(), path)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestStoresSharingOneFile: several stores on one file (processes sharing a data dir) migrate and
// write at once without SQLITE_BUSY, and together keep every record exactly once.
func TestStoresSharingOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	ctx := context.Background()
	stores := make([]*Store, 3)
	for i := range stores {
		stores[i] = open(t, path)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]store.UsageRecord, 300)
	for i := range recs {
		at := start.Add(time.Duration(i) * time.Second)
		recs[i] = store.UsageRecord{RequestID: fmt.Sprintf("r%d", i), Status: 200, StartedAt: at, EndedAt: at}
	}
	inserted := make([]int, 2*len(stores))
	errs = make([]error, len(inserted))
	for i := range inserted {
		s := stores[i%len(stores)]
		wg.Go(func() {
			// Overlapping batches: each writer's first half is another's second half.
			from := (i * 50) % 250
			inserted[i], errs[i] = s.InsertUsage(ctx, recs[from:from+100])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent InsertUsage: %v", err)
	}
	total := 0
	for _, n := range inserted {
		total += n
	}
	got, err := stores[0].ListUsage(ctx, store.UsageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if total != len(got) || len(got) != 300 {
		t.Errorf("writers reported %d new rows, table has %d, want 300 both", total, len(got))
	}
	var mode string
	if err := stores[1].r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestQuotaPolicyModelNull: the every-model policy is stored with model NULL, never the empty
// string, so "every model" has one representation in the table.
func TestQuotaPolicyModelNull(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "llmgate.db"))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"", "gpt-4o", ""} {
		if err := s.PutQuotaPolicy(ctx, store.QuotaPolicy{SubjectType: "user", SubjectID: "u1", Model: model}); err != nil {
			t.Fatalf("PutQuotaPolicy(%q): %v", model, err)
		}
	}
	var nulls, empties, rows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE model IS NULL),
		count(*) FILTER (WHERE model = ''), count(*) FROM quota_policies`).Scan(&nulls, &empties, &rows); err != nil {
		t.Fatal(err)
	}
	if nulls != 1 || empties != 0 || rows != 2 {
		t.Errorf("%d rows, %d with model NULL and %d with model '', want 2, 1 and 0", rows, nulls, empties)
	}
}
