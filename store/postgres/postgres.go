// Package postgres is the production store: PostgreSQL through a pgx connection pool, shared by
// every replica. Usage records go to a table partitioned by month and are written with COPY.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/migrations"
)

var _ store.Store = (*Store)(nil)

// migrateLockKey is the pg_advisory_lock key Migrate holds, so replicas that start together apply
// the migrations once, one after another. Any constant works; this one spells "llmgate".
const migrateLockKey int64 = 0x6c6c6d67617465

// partitionsAhead is how many months after the current one Migrate and UpkeepUsage make usage
// partitions for.
const partitionsAhead = 3

// Store is the PostgreSQL implementation of store.Store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time // the clock that picks which monthly partitions to make
}

// New connects a pool to dsn (a postgres:// URL or key=value string; pool settings such as
// pool_max_conns go in it too) and checks it answers. It does not migrate: call Migrate.
func New(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &Store{pool: pool, now: time.Now}, nil
}

// Migrate applies the embedded migrations not yet recorded in schema_migrations and makes the
// usage partitions for this month and the next few. It holds a session advisory lock throughout,
// so replicas migrating at once take turns and the later ones find nothing to do.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations.Postgres()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must not outlive this call on a
		// pooled connection. If the unlock fails the connection is dropped, which frees it.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrateLockKey); err != nil {
			conn.Conn().Close(uctx)
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := apply(ctx, conn.Conn(), m); err != nil {
			return err
		}
	}
	_, err = ensurePartitions(ctx, conn.Conn(), s.now())
	return err
}

func apply(ctx context.Context, conn *pgx.Conn, m migrations.Migration) error {
	var done bool
	if err := conn.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil {
		return fmt.Errorf("postgres: check migration %s: %w", m.Name, err)
	}
	if done {
		return nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin migration %s: %w", m.Name, err)
	}
	defer tx.Rollback(ctx)
	// No arguments: pgx sends it with the simple protocol, which runs several statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("postgres: apply migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
		m.Version, m.Name); err != nil {
		return fmt.Errorf("postgres: record migration %s: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit migration %s: %w", m.Name, err)
	}
	return nil
}

// ensurePartitions makes the monthly usage_records partitions from now's month to partitionsAhead
// months later, skipping those that exist. Rows that already fell into the DEFAULT partition for
// such a month are moved into the new partition in the same transaction; PostgreSQL refuses to
// create a partition whose range the DEFAULT partition holds rows for. It returns the names of
// the partitions it made.
func ensurePartitions(ctx context.Context, conn *pgx.Conn, now time.Time) ([]string, error) {
	first := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	var created []string
	for i := 0; i <= partitionsAhead; i++ {
		from := first.AddDate(0, i, 0)
		to := from.AddDate(0, 1, 0)
		name := partitionName(from)
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
			return created, fmt.Errorf("postgres: check partition %s: %w", name, err)
		}
		if exists {
			continue
		}
		// Table names and partition bounds cannot be bound: name is built above from digits only
		// and the bounds are formatted times.
		stmts := []string{
			`CREATE TEMP TABLE usage_moved (LIKE usage_records) ON COMMIT DROP`,
			fmt.Sprintf(`WITH d AS (DELETE FROM usage_records_default
				WHERE started_at >= '%s' AND started_at < '%s' RETURNING *)
				INSERT INTO usage_moved SELECT * FROM d`,
				from.Format(time.RFC3339), to.Format(time.RFC3339)),
			fmt.Sprintf(`CREATE TABLE %s PARTITION OF usage_records FOR VALUES FROM ('%s') TO ('%s')`,
				name, from.Format(time.RFC3339), to.Format(time.RFC3339)),
			`INSERT INTO usage_records SELECT * FROM usage_moved`,
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return created, fmt.Errorf("postgres: create partition %s: %w", name, err)
		}
		created = append(created, name)
	}
	return created, nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// mapErr turns unique violations (SQLSTATE 23505) into store.ErrConflict and foreign-key
// violations (23503: a user or tenant that does not exist) into store.ErrNotFound, keeping the
// driver error in the chain for logs.
func mapErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case "23503":
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func orDefaultTenant(id string) string {
	if id == "" {
		return store.DefaultTenant
	}
	return id
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// page turns a filter's Limit/Offset into the values bound to LIMIT/OFFSET.
func page(limit, offset int) (int, int) {
	if limit <= 0 {
		limit = 100
	}
	return limit, max(offset, 0)
}

func orNowPtr(t *time.Time) time.Time {
	if t == nil {
		return time.Now()
	}
	return orNow(*t)
}
