package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/store"
)

const putResponseRouteSQL = `INSERT INTO response_routes
	(response_id, tenant_id, key_id, model, deployment_id, provider, created_at, expires_at, history, response)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (response_id) DO UPDATE SET tenant_id = excluded.tenant_id, key_id = excluded.key_id, model = excluded.model,
		deployment_id = excluded.deployment_id, provider = excluded.provider, created_at = excluded.created_at,
		expires_at = excluded.expires_at, history = excluded.history, response = excluded.response`

func responseRouteArgs(r store.ResponseRoute) []any {
	return []any{r.ResponseID, r.TenantID, r.KeyID, r.Model, r.DeploymentID, r.Provider, micros(r.CreatedAt), micros(r.ExpiresAt), r.History, r.Response}
}

// PutResponseRoute inserts or replaces the route of one response id.
func (s *Store) PutResponseRoute(ctx context.Context, r store.ResponseRoute) error {
	return s.PutResponseRoutes(ctx, []store.ResponseRoute{r})
}

// routeStmt is the route upsert prepared once on the writer connection (database/sql keeps it
// for that connection, the writer's only one): routes are written for every stored response, and
// parsing the statement each time cost more than running it. Prepared on first use, since the
// table exists only once the store is migrated.
func (s *Store) routeStmt(ctx context.Context) (*sql.Stmt, error) {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	if s.putRoute == nil {
		st, err := s.w.PrepareContext(ctx, putResponseRouteSQL)
		if err != nil {
			return nil, err
		}
		s.putRoute = st
	}
	return s.putRoute, nil
}

// PutResponseRoutes inserts or replaces many routes in one transaction (one commit for the
// batch); a single route is written on its own, without BEGIN and COMMIT statements.
func (s *Store) PutResponseRoutes(ctx context.Context, rs []store.ResponseRoute) error {
	if len(rs) == 0 {
		return nil
	}
	stmt, err := s.routeStmt(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: put response routes: %w", mapErr(err))
	}
	if len(rs) == 1 {
		if _, err := stmt.ExecContext(ctx, responseRouteArgs(rs[0])...); err != nil {
			return fmt.Errorf("sqlite: put response route %q: %w", rs[0].ResponseID, mapErr(err))
		}
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: put response routes: %w", mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	txStmt := tx.StmtContext(ctx, stmt)
	for _, r := range rs {
		if _, err := txStmt.ExecContext(ctx, responseRouteArgs(r)...); err != nil {
			return fmt.Errorf("sqlite: put response route %q: %w", r.ResponseID, mapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put response routes: %w", mapErr(err))
	}
	return nil
}

// ResponseRoute returns the route of a response id that has not expired at now.
func (s *Store) ResponseRoute(ctx context.Context, responseID string, now time.Time) (store.ResponseRoute, error) {
	var r store.ResponseRoute
	var created, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT response_id, tenant_id, key_id, model, deployment_id, provider, created_at, expires_at, history, response
		FROM response_routes WHERE response_id = ? AND expires_at > ?`, responseID, micros(now)).
		Scan(&r.ResponseID, &r.TenantID, &r.KeyID, &r.Model, &r.DeploymentID, &r.Provider, &created, &expires, &r.History, &r.Response)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ResponseRoute{}, fmt.Errorf("sqlite: response route %q: %w", responseID, store.ErrNotFound)
	}
	if err != nil {
		return store.ResponseRoute{}, fmt.Errorf("sqlite: response route %q: %w", responseID, err)
	}
	r.CreatedAt, r.ExpiresAt = fromMicros(created), fromMicros(expires)
	return r, nil
}

// DeleteResponseRoute removes the route of a response id; ErrNotFound when there is none.
func (s *Store) DeleteResponseRoute(ctx context.Context, responseID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM response_routes WHERE response_id = ?`, responseID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete response route %q: %w", responseID, err)
	}
	return nil
}

// PurgeResponseRoutes removes the routes expired before `before`.
func (s *Store) PurgeResponseRoutes(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM response_routes WHERE expires_at <= ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge response routes: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge response routes: %w", err)
	}
	return n, nil
}
