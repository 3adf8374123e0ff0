package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store/postgres"
)

// TestServeRunsUsageUpkeep: the binary with PostgreSQL runs the usage upkeep while serving: an
// old monthly partition goes under usage.retention_months without a restart, the success shows
// on /metrics, and shutdown stops it (the package's leak check would see it otherwise).
func TestServeRunsUsageUpkeep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pg.NewDatabase(t)
	st, err := postgres.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Migrate(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE usage_records_p202001 PARTITION OF usage_records
		FOR VALUES FROM ('2020-01-01T00:00:00Z') TO ('2020-02-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}

	path := writeConfig(t, `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
data_dir: `+t.TempDir()+`
usage:
  retention_months: 12
`)
	cfg, err := loadConfig(path, envOf(map[string]string{"LLMGATE_DATABASE_URL": dsn, "LLMGATE_ADMIN_TOKEN": testAdminToken}))
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := a.shutdown(sctx); err != nil {
			t.Error(err)
		}
	}()

	deadline := time.Now().Add(time.Minute)
	for {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass('usage_records_p202001') IS NOT NULL`).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("usage_records_p202001 still exists a minute after start with usage.retention_months 12")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The pass that dropped the partition records its success when it ends, a moment later.
	for {
		page := scrapeMetrics(t, a.adminURL)
		ok := strings.Contains(page, "llmgate_usage_upkeep_errors_total 0") &&
			!strings.Contains(page, "llmgate_usage_upkeep_last_success_timestamp_seconds 0\n") &&
			strings.Contains(page, "llmgate_usage_upkeep_last_success_timestamp_seconds ")
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics does not show a successful upkeep:\n%s", grepLines(page, "llmgate_usage_upkeep"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrapeMetrics(t *testing.T, adminURL string) string {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return string(b)
}
