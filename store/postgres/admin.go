package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// CreateAdminToken inserts a token; its role is checked before writing (and by the column's
// CHECK), an empty TenantID is stored as NULL (every tenant).
func (s *Store) CreateAdminToken(ctx context.Context, t store.AdminToken, tokenHash string) error {
	if err := store.ValidRole(t.Role); err != nil {
		return fmt.Errorf("postgres: create admin token: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO admin_tokens (id, name, token_hash, prefix, role,
			tenant_id, created_by, created_at, expires_at, revoked_at, last_used_at)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10, $11)`,
		t.ID, t.Name, tokenHash, t.Prefix, t.Role, t.TenantID, t.CreatedBy, orNow(t.CreatedAt),
		t.ExpiresAt, t.RevokedAt, t.LastUsedAt)
	if err != nil {
		return fmt.Errorf("postgres: create admin token %q: %w", t.ID, mapErr(err))
	}
	return nil
}

const adminTokenColumns = `id, name, prefix, role, COALESCE(tenant_id, ''), created_by, created_at,
	expires_at, revoked_at, last_used_at`

// AdminTokenByHash returns the token with this hash through its unique index, revoked or expired
// alike.
func (s *Store) AdminTokenByHash(ctx context.Context, tokenHash string) (store.AdminToken, error) {
	t, err := scanAdminToken(s.pool.QueryRow(ctx,
		`SELECT `+adminTokenColumns+` FROM admin_tokens WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return store.AdminToken{}, fmt.Errorf("postgres: admin token by hash: %w", notFound(err))
	}
	return t, nil
}

// GetAdminToken returns the token or ErrNotFound.
func (s *Store) GetAdminToken(ctx context.Context, id string) (store.AdminToken, error) {
	t, err := scanAdminToken(s.pool.QueryRow(ctx,
		`SELECT `+adminTokenColumns+` FROM admin_tokens WHERE id = $1`, id))
	if err != nil {
		return store.AdminToken{}, fmt.Errorf("postgres: get admin token: %w", notFound(err))
	}
	return t, nil
}

// ListAdminTokens returns tokens newest first (ties by id, descending).
func (s *Store) ListAdminTokens(ctx context.Context, f store.AdminTokenFilter) ([]store.AdminToken, error) {
	var w where
	if f.Role != "" {
		w.add("role = ", f.Role)
	}
	if f.TenantID != "" {
		w.add("tenant_id = ", f.TenantID)
	}
	if f.Name != "" {
		w.cond(`name ILIKE ` + w.arg(contains(f.Name)) + ` ESCAPE '\'`)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens`+w.sql()+
		` ORDER BY created_at DESC, id DESC`+w.page(limit, offset), w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list admin tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AdminToken, error) {
		return scanAdminToken(row)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list admin tokens: %w", err)
	}
	return out, nil
}

// RevokeAdminToken marks the token revoked; a token already revoked keeps its first time.
func (s *Store) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at, id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: revoke admin token %q: %w", id, err)
	}
	return nil
}

// TouchAdminToken records a use of the token. The last use only moves forward (GREATEST ignores
// the NULL of a token never used), so requests that finish out of order leave the latest;
// ErrNotFound when there is no such token.
func (s *Store) TouchAdminToken(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE admin_tokens SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2`, at, id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: touch admin token %q: %w", id, err)
	}
	return nil
}

func scanAdminToken(row pgx.Row) (store.AdminToken, error) {
	var t store.AdminToken
	if err := row.Scan(&t.ID, &t.Name, &t.Prefix, &t.Role, &t.TenantID, &t.CreatedBy, &t.CreatedAt,
		&t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt); err != nil {
		return store.AdminToken{}, err
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), utcPtr(t.ExpiresAt)
	t.RevokedAt, t.LastUsedAt = utcPtr(t.RevokedAt), utcPtr(t.LastUsedAt)
	return t, nil
}

// InsertAdminAudit appends an entry (At defaults to now) and returns its id.
func (s *Store) InsertAdminAudit(ctx context.Context, e store.AdminAuditEntry) (int64, error) {
	if err := store.ValidAuditEntry(e); err != nil {
		return 0, fmt.Errorf("postgres: insert admin audit: %w", err)
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO admin_audit
		(actor, action, target, tenant_id, before, after, request_id, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		e.Actor, e.Action, e.Target, e.TenantID, jsonDoc(e.Before), jsonDoc(e.After), e.RequestID,
		orNow(e.At)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("postgres: insert admin audit: %w", err)
	}
	return id, nil
}

// ListAdminAudit returns entries newest first (ties by id, descending). An Action ending in "."
// matches as a prefix.
func (s *Store) ListAdminAudit(ctx context.Context, f store.AdminAuditFilter) ([]store.AdminAuditEntry, error) {
	var w where
	if f.Actor != "" {
		w.add("actor = ", f.Actor)
	}
	if strings.HasSuffix(f.Action, ".") {
		w.cond(`starts_with(action, ` + w.arg(f.Action) + `)`)
	} else if f.Action != "" {
		w.add("action = ", f.Action)
	}
	if f.Target != "" {
		w.add("target = ", f.Target)
	}
	if f.TenantID != "" {
		w.add("tenant_id = ", f.TenantID)
	}
	if !f.From.IsZero() {
		w.add("at >= ", f.From)
	}
	if !f.To.IsZero() {
		w.add("at < ", f.To)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT id, actor, action, target, tenant_id, before, after,
		request_id, at FROM admin_audit`+w.sql()+` ORDER BY at DESC, id DESC`+w.page(limit, offset),
		w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list admin audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AdminAuditEntry, error) {
		var e store.AdminAuditEntry
		err := row.Scan(&e.ID, &e.Actor, &e.Action, &e.Target, &e.TenantID, &e.Before, &e.After,
			&e.RequestID, &e.At)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list admin audit: %w", err)
	}
	return out, nil
}

// jsonDoc binds a JSON document for a jsonb column as its raw bytes; nil and empty are NULL.
func jsonDoc(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// DeploymentOverrides returns every override by deployment id in byte order (COLLATE "C", as
// SQLite and Go compare).
func (s *Store) DeploymentOverrides(ctx context.Context) ([]store.DeploymentOverride, error) {
	rows, err := s.pool.Query(ctx, `SELECT deployment_id, enabled, weight, updated_by, updated_at
		FROM deployment_overrides ORDER BY deployment_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: deployment overrides: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DeploymentOverride, error) {
		var o store.DeploymentOverride
		var weight *int32
		err := row.Scan(&o.DeploymentID, &o.Enabled, &weight, &o.UpdatedBy, &o.UpdatedAt)
		if weight != nil {
			w := int(*weight)
			o.Weight = &w
		}
		o.UpdatedAt = o.UpdatedAt.UTC()
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: deployment overrides: %w", err)
	}
	return out, nil
}

// PutDeploymentOverride inserts or replaces the override of one deployment in one statement;
// UpdatedAt is set to the current time whatever o carries.
func (s *Store) PutDeploymentOverride(ctx context.Context, o store.DeploymentOverride) error {
	if err := store.ValidDeploymentOverride(o); err != nil {
		return fmt.Errorf("postgres: put deployment override: %w", err)
	}
	var weight *int32
	if o.Weight != nil {
		w := int32(*o.Weight) // in range: checked above
		weight = &w
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO deployment_overrides
		(deployment_id, enabled, weight, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (deployment_id) DO UPDATE SET enabled = EXCLUDED.enabled, weight = EXCLUDED.weight,
			updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at`,
		o.DeploymentID, o.Enabled, weight, o.UpdatedBy, time.Now())
	if err != nil {
		return fmt.Errorf("postgres: put deployment override: %w", mapErr(err))
	}
	return nil
}

// DeleteDeploymentOverride removes one; ErrNotFound when there is none.
func (s *Store) DeleteDeploymentOverride(ctx context.Context, deploymentID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM deployment_overrides WHERE deployment_id = $1`, deploymentID)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete deployment override %q: %w", deploymentID, err)
	}
	return nil
}
