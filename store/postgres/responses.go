package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

const putResponseRouteSQL = `INSERT INTO response_routes
	(response_id, tenant_id, key_id, model, deployment_id, provider, created_at, expires_at, history, response)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (response_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, key_id = EXCLUDED.key_id, model = EXCLUDED.model,
		deployment_id = EXCLUDED.deployment_id, provider = EXCLUDED.provider, created_at = EXCLUDED.created_at,
		expires_at = EXCLUDED.expires_at, history = EXCLUDED.history, response = EXCLUDED.response`

func responseRouteArgs(r store.ResponseRoute) []any {
	return []any{r.ResponseID, r.TenantID, r.KeyID, r.Model, r.DeploymentID, r.Provider, r.CreatedAt, r.ExpiresAt, r.History, r.Response}
}

// PutResponseRoute inserts or replaces the route of one response id.
func (s *Store) PutResponseRoute(ctx context.Context, r store.ResponseRoute) error {
	if _, err := s.pool.Exec(ctx, putResponseRouteSQL, responseRouteArgs(r)...); err != nil {
		return fmt.Errorf("postgres: put response route: %w", mapErr(err))
	}
	return nil
}

// PutResponseRoutes inserts or replaces many routes with one pgx batch: sent at once and run as
// one implicit transaction, so a failed statement undoes the batch. One statement per route rather than one multi-row INSERT, because ON CONFLICT DO
// UPDATE refuses to touch a row twice in one statement.
func (s *Store) PutResponseRoutes(ctx context.Context, rs []store.ResponseRoute) error {
	if len(rs) == 0 {
		return nil
	}
	var b pgx.Batch
	for _, r := range rs {
		b.Queue(putResponseRouteSQL, responseRouteArgs(r)...)
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("postgres: put response routes: %w", mapErr(err))
	}
	return nil
}

// ResponseRoute returns the route of a response id that has not expired at now.
func (s *Store) ResponseRoute(ctx context.Context, responseID string, now time.Time) (store.ResponseRoute, error) {
	var r store.ResponseRoute
	err := s.pool.QueryRow(ctx, `SELECT response_id, tenant_id, key_id, model, deployment_id, provider, created_at, expires_at, history, response
		FROM response_routes WHERE response_id = $1 AND expires_at > $2`, responseID, now).
		Scan(&r.ResponseID, &r.TenantID, &r.KeyID, &r.Model, &r.DeploymentID, &r.Provider, &r.CreatedAt, &r.ExpiresAt, &r.History, &r.Response)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ResponseRoute{}, fmt.Errorf("postgres: response route %q: %w", responseID, store.ErrNotFound)
	}
	if err != nil {
		return store.ResponseRoute{}, fmt.Errorf("postgres: response route %q: %w", responseID, mapErr(err))
	}
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return r, nil
}

// DeleteResponseRoute removes the route of a response id; ErrNotFound when there is none.
func (s *Store) DeleteResponseRoute(ctx context.Context, responseID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM response_routes WHERE response_id = $1`, responseID)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete response route %q: %w", responseID, err)
	}
	return nil
}

// PurgeResponseRoutes removes the routes expired before `before`.
func (s *Store) PurgeResponseRoutes(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM response_routes WHERE expires_at <= $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge response routes: %w", err)
	}
	return tag.RowsAffected(), nil
}
