package audit

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/postgres"
)

// TestUpkeepCountsFailuresAndRetries: a replica whose database role may not make partitions
// fails its upkeep at start and on every tick, each failure logged and counted in
// llmgate_usage_upkeep_errors_total; once the role may, the next tick makes the partition. Run
// returns when its context ends.
func TestUpkeepCountsFailuresAndRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, dsn := newPG(t, pg)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("upkeep_%d", time.Now().UnixNano())
	// Make the partition three months ahead missing, so the upkeep has one to make.
	ahead := time.Now().UTC()
	ahead = time.Date(ahead.Year(), ahead.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 3, 0)
	missing := fmt.Sprintf("usage_records_p%04d%02d", ahead.Year(), ahead.Month())
	if _, err := admin.Exec(ctx, `DROP TABLE `+missing+`; CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the database goes; the role's store is closed by then
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `REASSIGN OWNED BY `+role+` TO CURRENT_USER; DROP OWNED BY `+role+`; DROP ROLE `+role); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	st, err := postgres.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	var logs testlog.Buffer
	reg := prometheus.NewRegistry()
	k, err := NewUpkeep(st, Options{UpkeepInterval: 20 * time.Millisecond, Registerer: reg},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); k.Run(runCtx) }()
	defer func() { stop(); <-done }()

	waitFor(t, time.Minute, "two failed passes counted", func() bool {
		return testutil.ToFloat64(k.errors) >= 2
	})
	if !strings.Contains(logs.String(), "usage upkeep failed") || !strings.Contains(logs.String(), missing) {
		t.Errorf("log of the failures lacks the message or the partition's name:\n%s", logs.String())
	}
	if n, err := testutil.GatherAndCount(reg, "llmgate_usage_upkeep_errors_total"); err != nil || n != 1 {
		t.Errorf("llmgate_usage_upkeep_errors_total not registered: %d, %v", n, err)
	}

	if _, err := admin.Exec(ctx, `ALTER TABLE usage_records OWNER TO `+role+`;
		GRANT ALL ON usage_records_default TO `+role+`; GRANT CREATE ON SCHEMA public TO `+role); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the partition made by a later tick", func() bool {
		var exists bool
		if err := admin.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, missing).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		return exists
	})
	waitFor(t, time.Minute, "the success noted", func() bool { return testutil.ToFloat64(k.lastSuccess) > 0 })
	if !strings.Contains(logs.String(), "usage partition created") {
		t.Errorf("no log line for the partition made:\n%s", logs.String())
	}
	stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestUpkeepLogsDroppedPartitions: each partition dropped for retention gets a log line naming it.
func TestUpkeepLogsDroppedPartitions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, dsn := newPG(t, pg)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	old := store.RetentionHorizon(time.Now(), 2).AddDate(0, -1, 0)
	name := fmt.Sprintf("usage_records_p%04d%02d", old.Year(), old.Month())
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF usage_records FOR VALUES FROM ('%s') TO ('%s')`,
		name, old.Format(time.RFC3339), old.AddDate(0, 1, 0).Format(time.RFC3339))); err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	k, err := NewUpkeep(st, Options{RetentionMonths: 2}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	k.pass(ctx)
	if !strings.Contains(logs.String(), "usage partition dropped") || !strings.Contains(logs.String(), name) {
		t.Errorf("no log line naming the dropped %s:\n%s", name, logs.String())
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil || exists {
		t.Errorf("%s still exists (%v)", name, err)
	}
}
