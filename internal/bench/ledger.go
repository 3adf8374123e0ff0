package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/audit"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/postgres"
)

// The ledger scenario: the usage recorder, in the bench process with the gateway's default
// writers, carries records that each charge a credit account into a PostgreSQL of the bench's own
// (initdb on a temporary directory, loopback only, durability off as in the tests), and the
// report gives the rows per second against the target: the median of as many runs as the bench
// has rounds, each into a fresh database.
const (
	targetLedgerRowsPerSec = 50_000
	ledgerRecords          = 200_000
)

// ledgerAccounts are the runs: records spread over this many accounts (the many-accounts run
// first: it moves 1,000 balances and rollup rows a batch, the harder case).
var ledgerAccounts = []int{1000, 50}

// ledgerReport is the scenario's outcome; Skipped says why it did not run.
type ledgerReport struct {
	Server  string      `json:"server,omitempty"`
	Writers int         `json:"writers,omitempty"`
	Runs    []ledgerRun `json:"runs,omitempty"`
	Skipped string      `json:"skipped,omitempty"`
}

// ledgerRun is one account count's figure: Records charged records over Accounts accounts, each
// run's rows per second (PerRun, in the order run) and their median (RowsPerSecond), the judged
// figure.
type ledgerRun struct {
	Accounts      int       `json:"accounts"`
	Records       int       `json:"records"`
	RowsPerSecond float64   `json:"rows_per_second"`
	PerRun        []float64 `json:"rows_per_second_per_run,omitempty"`
	Met           bool      `json:"met"`
}

// writeLedgerLines adds the scenario's lines: one per account count, with each run's figure when
// there were several, or why it was skipped.
func (r *benchReport) writeLedgerLines(w io.Writer) {
	l := r.Ledger
	if l == nil {
		return
	}
	if l.Skipped != "" {
		fmt.Fprintf(w, "ledger: charged rows/s into PostgreSQL\tskipped\t(%s)\n", l.Skipped)
		return
	}
	for _, run := range l.Runs {
		runs := ""
		if len(run.PerRun) > 1 {
			runs = fmt.Sprintf("median of %d runs:", len(run.PerRun))
			for _, v := range run.PerRun {
				runs += fmt.Sprintf(" %.0f", v)
			}
			runs += "; "
		}
		fmt.Fprintf(w, "ledger: charged rows/s into PostgreSQL, %d accounts\t%.0f\t(%s%d records, %d writers, %s; target ≥ %d: %s)\n",
			run.Accounts, run.RowsPerSecond, runs, run.Records, l.Writers, l.Server, targetLedgerRowsPerSec, metOrMissed(run.Met))
	}
}

// ledgerScenario runs the ledger scenario, runs times per account count, or reports it skipped
// when PostgreSQL is not installed (an error instead with requirePostgres).
func ledgerScenario(ctx context.Context, runs int, requirePostgres bool, stderr io.Writer) (*ledgerReport, error) {
	initdb, server, err := postgresBins()
	if err != nil {
		if requirePostgres {
			return nil, err
		}
		fmt.Fprintf(stderr, "bench: skipping the ledger scenario: %v (install PostgreSQL, or --require-postgres to make this an error)\n", err)
		return &ledgerReport{Skipped: err.Error()}, nil
	}
	return runLedger(ctx, initdb, server, max(runs, 1), stderr)
}

// postgresBins finds initdb and postgres: in PATH, else in the newest /usr/lib/postgresql/*/bin
// (Debian's layout, where only the client programs are in PATH).
func postgresBins() (initdb, server string, err error) {
	dirs := []string{""}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool { return pgMajor(found[i]) > pgMajor(found[j]) })
	dirs = append(dirs, found...)
	for _, d := range dirs {
		look := func(name string) (string, error) {
			if d == "" {
				return exec.LookPath(name)
			}
			p := filepath.Join(d, name)
			_, err := os.Stat(p)
			return p, err
		}
		i, err1 := look("initdb")
		s, err2 := look("postgres")
		if err1 == nil && err2 == nil {
			return i, s, nil
		}
	}
	return "", "", errors.New("PostgreSQL's initdb and postgres not found in PATH or /usr/lib/postgresql/*/bin")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runLedger runs the scenario; an error means PostgreSQL was there and something failed.
func runLedger(ctx context.Context, initdb, server string, runs int, stderr io.Writer) (*ledgerReport, error) {
	attr, uid, gid := benchChildAttr(), -1, -1
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root: run it as the postgres user
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		attr = benchChildAttrAs(uint32(uid), uint32(gid))
	}
	dir, err := os.MkdirTemp("", "llmgate-bench-pg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if uid >= 0 {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir, cmd.SysProcAttr, cmd.Env = dir, attr, benchChildEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, formatLastLines(string(out)))
	}
	addr, err := benchFreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	pg, _, err := startBenchChildAttr(ctx, "postgres", server, []string{"-D", data, "-p", port, "-h", "127.0.0.1", "-k", sock,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_wal_size=1GB"},
		benchChildEnv(), "", "", attr)
	if err != nil {
		return nil, err
	}
	defer pg.stop() // SIGTERM: a smart shutdown, once every connection is closed
	base := "postgres://postgres@" + addr + "/"
	version, err := waitPostgres(ctx, pg, base+"postgres?sslmode=disable")
	if err != nil {
		return nil, err
	}
	rep := &ledgerReport{Server: version, Writers: audit.DefaultWriters}
	for _, accounts := range ledgerAccounts {
		run := ledgerRun{Accounts: accounts, Records: ledgerRecords}
		for i := range runs {
			fmt.Fprintf(stderr, "bench: ledger: %d charged records over %d accounts into %s, run %d/%d\n", ledgerRecords, accounts, version, i+1, runs)
			db := fmt.Sprintf("ledger_%d_%d", accounts, i)
			rps, err := ledgerRunOnce(ctx, base, dir, db, accounts, stderr)
			if err == nil {
				// Dropped once measured and checked, so that the server's background work on it
				// (autovacuum of 200,000 new rows, their dirty pages) is not done during the next run.
				err = adminExec(ctx, base, "DROP DATABASE "+db+" WITH (FORCE)")
			}
			if err != nil {
				return nil, fmt.Errorf("%d accounts, run %d: %w", accounts, i+1, err)
			}
			run.PerRun = append(run.PerRun, rps)
		}
		run.RowsPerSecond = medianOf(run.PerRun)
		run.Met = ledgerMet(run.RowsPerSecond)
		rep.Runs = append(rep.Runs, run)
	}
	return rep, nil
}

// waitPostgres waits (up to a minute) until the server answers and returns its version.
func waitPostgres(ctx context.Context, pg *benchChild, dsn string) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		if err == nil {
			var v string
			err = conn.QueryRow(cctx, "SHOW server_version").Scan(&v)
			conn.Close(cctx)
			cancel()
			if f := strings.Fields(v); len(f) > 0 {
				v = f[0]
			}
			return "PostgreSQL " + v, err
		}
		cancel()
		select {
		case <-pg.exited:
			return "", fmt.Errorf("postgres exited during start-up: %v%s", pg.err, pg.lastLines())
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("postgres not answering on %s within a minute: %v%s", dsn, err, pg.lastLines())
		}
	}
}

// adminExec runs one statement (CREATE or DROP DATABASE) on the server's postgres database.
func adminExec(ctx context.Context, base, sql string) error {
	admin, err := pgx.Connect(ctx, base+"postgres?sslmode=disable")
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, sql)
	return err
}

// ledgerRunOnce makes the fresh database db with the accounts, records ledgerRecords charged
// records through a recorder with the default writers and a queue that holds them all (nothing
// spools), and returns their rows per second from the first Record until Close has committed
// the last batch.
func ledgerRunOnce(ctx context.Context, base, dir, db string, accounts int, stderr io.Writer) (float64, error) {
	if err := adminExec(ctx, base, "CREATE DATABASE "+db); err != nil {
		return 0, err
	}
	st, err := postgres.New(ctx, base+db+"?sslmode=disable")
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return 0, err
	}
	for u := range accounts {
		if _, err := st.EnsureCreditAccount(ctx, "user", "user-"+strconv.Itoa(u)); err != nil {
			return 0, err
		}
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	recs := make([]store.UsageRecord, ledgerRecords)
	for i := range recs {
		user, cost := "user-"+strconv.Itoa(i%accounts), int64(150_000+i)
		recs[i] = store.UsageRecord{RequestID: fmt.Sprintf("bench-ledger-%07d", i), TenantID: store.DefaultTenant,
			UserID: user, KeyID: "key-" + user, Model: "gpt-4o-mini", UpstreamModel: "gpt-4o-mini", Provider: "mock",
			Deployment: "mock/gpt-4o-mini", Endpoint: "chat/completions", Status: 200, PromptTokens: int64(i % 1000),
			CompletionTokens: 7, UsageSource: "provider", CostPicoUSD: &cost, StartedAt: at, EndedAt: at,
			Charge: true, PayerType: "user", PayerID: user}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	spool := filepath.Join(dir, db+"-spool")
	rec, err := audit.New(st, audit.Options{QueueSize: ledgerRecords, Writers: audit.DefaultWriters, SpoolDir: spool}, log)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range recs {
		rec.Record(recs[i])
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := rec.Close(cctx); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	if s := rec.Stats(); s.Spooled != 0 || s.Dropped != 0 {
		return 0, fmt.Errorf("%d records spooled and %d dropped: the run measures the writers alone", s.Spooled, s.Dropped)
	}
	conn, err := pgx.Connect(ctx, base+db+"?sslmode=disable")
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var rows, charges int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM usage_records),
		(SELECT count(*) FROM credit_ledger WHERE kind = 'charge')`).Scan(&rows, &charges); err != nil {
		return 0, err
	}
	if rows != ledgerRecords || charges != ledgerRecords {
		return 0, fmt.Errorf("%d usage rows and %d charges, want %d of each", rows, charges, ledgerRecords)
	}
	return float64(ledgerRecords) / elapsed.Seconds(), nil
}

// ledgerMet reports whether rows per second meet the target.
func ledgerMet(rps float64) bool { return rps >= targetLedgerRowsPerSec }
