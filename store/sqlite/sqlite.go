// Package sqlite is the embedded store: one SQLite file, zero setup, for a single machine.
//
// SQLite allows one writer at a time, so the store keeps two handles on the file: a writer pool
// of exactly one connection, whose transactions begin IMMEDIATE (they take the write lock up front
// instead of failing to upgrade a read lock mid-transaction), and a read-only pool that WAL lets
// run beside the writer. Times are stored as INTEGER unix microseconds (UTC).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/migrations"
)

var _ store.Store = (*Store)(nil)

// busyTimeoutMS is how long a connection waits for another process's lock before SQLITE_BUSY.
const busyTimeoutMS = 10000

// Store is the SQLite implementation of store.Store. It is safe for concurrent use.
type Store struct {
	w   *sql.DB          // the single writer connection
	r   *sql.DB          // read-only pool
	now func() time.Time // the clock retention measures its horizon from

	routeMu  sync.Mutex
	putRoute *sql.Stmt // the route upsert, prepared on first use (see routeStmt)
}

// New opens (creating if needed) the database file at path. It does not migrate: call Migrate.
func New(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, errors.New("sqlite: a file path is required (two pools cannot share :memory:)")
	}
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	common.Add("_pragma", "foreign_keys(1)")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(NORMAL)") // durable across crashes of the process in WAL mode
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// The writer connects first so the file is in WAL mode before any reader opens it.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &Store{w: w, r: r, now: time.Now}, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Migrate applies the embedded migrations not yet recorded in schema_migrations, each in its own
// IMMEDIATE transaction, so concurrent callers (goroutines or processes) serialise on the write
// lock and the later ones find the version already applied.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations.SQLite()
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return s.migrate(ctx, ms)
}

// migrate applies ms in order, each once (tests stop it at a version by passing the first ones).
func (s *Store) migrate(ctx context.Context, ms []migrations.Migration) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, m migrations.Migration) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin migration %s: %w", m.Name, err)
	}
	defer tx.Rollback()
	var done bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.Version).Scan(&done); err != nil {
		return fmt.Errorf("sqlite: check migration %s: %w", m.Name, err)
	}
	if done {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("sqlite: apply migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("sqlite: record migration %s: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit migration %s: %w", m.Name, err)
	}
	return nil
}

// Ping checks both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping readers: %w", err)
	}
	return nil
}

// Close closes both pools.
func (s *Store) Close() error {
	s.routeMu.Lock()
	var err error
	if s.putRoute != nil {
		err = s.putRoute.Close()
	}
	s.routeMu.Unlock()
	return errors.Join(err, s.r.Close(), s.w.Close())
}

// mapErr turns unique-constraint violations into store.ErrConflict and foreign-key violations (a
// user or tenant that does not exist) into store.ErrNotFound, keeping the driver error in the
// chain for logs.
func mapErr(err error) error {
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// page turns a filter's Limit/Offset into the values bound to LIMIT/OFFSET.
func page(limit, offset int) (int, int) {
	if limit <= 0 {
		limit = 100
	}
	return limit, max(offset, 0)
}
