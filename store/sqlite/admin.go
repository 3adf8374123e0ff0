package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/llmgate/llmgate/store"
)

// CreateAdminToken inserts a token; its role is checked before writing (and by the column's
// CHECK), an empty TenantID is stored as NULL (every tenant).
func (s *Store) CreateAdminToken(ctx context.Context, t store.AdminToken, tokenHash string) error {
	if err := store.ValidRole(t.Role); err != nil {
		return fmt.Errorf("sqlite: create admin token: %w", err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO admin_tokens (id, name, token_hash, prefix, role,
			tenant_id, created_by, created_at, expires_at, revoked_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?)`,
		t.ID, t.Name, tokenHash, t.Prefix, t.Role, t.TenantID, t.CreatedBy, micros(orNow(t.CreatedAt)),
		nullMicros(t.ExpiresAt), nullMicros(t.RevokedAt), nullMicros(t.LastUsedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create admin token %q: %w", t.ID, mapErr(err))
	}
	return nil
}

const adminTokenColumns = `id, name, prefix, role, COALESCE(tenant_id, ''), created_by, created_at,
	expires_at, revoked_at, last_used_at`

// AdminTokenByHash returns the token with this hash through its unique index, revoked or expired
// alike.
func (s *Store) AdminTokenByHash(ctx context.Context, tokenHash string) (store.AdminToken, error) {
	t, err := scanAdminToken(s.r.QueryRowContext(ctx,
		`SELECT `+adminTokenColumns+` FROM admin_tokens WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return store.AdminToken{}, fmt.Errorf("sqlite: admin token by hash: %w", notFound(err))
	}
	return t, nil
}

// GetAdminToken returns the token or ErrNotFound.
func (s *Store) GetAdminToken(ctx context.Context, id string) (store.AdminToken, error) {
	t, err := scanAdminToken(s.r.QueryRowContext(ctx,
		`SELECT `+adminTokenColumns+` FROM admin_tokens WHERE id = ?`, id))
	if err != nil {
		return store.AdminToken{}, fmt.Errorf("sqlite: get admin token: %w", notFound(err))
	}
	return t, nil
}

// ListAdminTokens returns tokens newest first (ties by id, descending).
func (s *Store) ListAdminTokens(ctx context.Context, f store.AdminTokenFilter) ([]store.AdminToken, error) {
	var w where
	if f.Role != "" {
		w.add("role = ?", f.Role)
	}
	if f.TenantID != "" {
		w.add("tenant_id = ?", f.TenantID)
	}
	if f.Name != "" {
		w.add(`name LIKE ? ESCAPE '\'`, contains(f.Name))
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens`+w.sql()+
		` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list admin tokens: %w", err)
	}
	out, err := collect(rows, scanAdminToken)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list admin tokens: %w", err)
	}
	return out, nil
}

// RevokeAdminToken marks the token revoked; a token already revoked keeps its first time.
func (s *Store) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, micros(at), id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: revoke admin token %q: %w", id, err)
	}
	return nil
}

// TouchAdminToken records a use of the token. The last use only moves forward, so requests that
// finish out of order leave the latest; ErrNotFound when there is no such token.
func (s *Store) TouchAdminToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE admin_tokens SET last_used_at = max(COALESCE(last_used_at, ?), ?) WHERE id = ?`,
		micros(at), micros(at), id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: touch admin token %q: %w", id, err)
	}
	return nil
}

func scanAdminToken(row scanner) (store.AdminToken, error) {
	var t store.AdminToken
	var created int64
	var expires, revoked, used sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &t.Prefix, &t.Role, &t.TenantID, &t.CreatedBy, &created,
		&expires, &revoked, &used); err != nil {
		return store.AdminToken{}, err
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromNullMicros(expires)
	t.RevokedAt, t.LastUsedAt = fromNullMicros(revoked), fromNullMicros(used)
	return t, nil
}

// InsertAdminAudit appends an entry (At defaults to now) and returns its id.
func (s *Store) InsertAdminAudit(ctx context.Context, e store.AdminAuditEntry) (int64, error) {
	if err := store.ValidAuditEntry(e); err != nil {
		return 0, fmt.Errorf("sqlite: insert admin audit: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO admin_audit
		(actor, action, target, tenant_id, before, after, request_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Actor, e.Action, e.Target, e.TenantID, jsonText(e.Before), jsonText(e.After), e.RequestID,
		micros(orNow(e.At)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: insert admin audit: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("sqlite: insert admin audit: %w", err)
	}
	return id, nil
}

// ListAdminAudit returns entries newest first (ties by id, descending). An Action ending in "."
// matches as a prefix.
func (s *Store) ListAdminAudit(ctx context.Context, f store.AdminAuditFilter) ([]store.AdminAuditEntry, error) {
	var w where
	if f.Actor != "" {
		w.add("actor = ?", f.Actor)
	}
	if strings.HasSuffix(f.Action, ".") {
		w.add(`substr(action, 1, length(?)) = ?`, f.Action, f.Action)
	} else if f.Action != "" {
		w.add("action = ?", f.Action)
	}
	if f.Target != "" {
		w.add("target = ?", f.Target)
	}
	if f.TenantID != "" {
		w.add("tenant_id = ?", f.TenantID)
	}
	if !f.From.IsZero() {
		w.add("at >= ?", micros(f.From))
	}
	if !f.To.IsZero() {
		w.add("at < ?", micros(f.To))
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT id, actor, action, target, tenant_id, before, after,
		request_id, at FROM admin_audit`+w.sql()+` ORDER BY at DESC, id DESC LIMIT ? OFFSET ?`,
		append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list admin audit: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.AdminAuditEntry, error) {
		var e store.AdminAuditEntry
		var before, after sql.NullString
		var at int64
		if err := row.Scan(&e.ID, &e.Actor, &e.Action, &e.Target, &e.TenantID, &before, &after,
			&e.RequestID, &at); err != nil {
			return store.AdminAuditEntry{}, err
		}
		if before.Valid {
			e.Before = []byte(before.String)
		}
		if after.Valid {
			e.After = []byte(after.String)
		}
		e.At = fromMicros(at)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list admin audit: %w", err)
	}
	return out, nil
}

// jsonText binds a JSON document as TEXT (a []byte would bind as a BLOB, which the STRICT column
// refuses); nil and empty are NULL.
func jsonText(b []byte) sql.NullString {
	if len(b) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

// DeploymentOverrides returns every override by deployment id (byte order).
func (s *Store) DeploymentOverrides(ctx context.Context) ([]store.DeploymentOverride, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT deployment_id, enabled, weight, updated_by, updated_at
		FROM deployment_overrides ORDER BY deployment_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deployment overrides: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.DeploymentOverride, error) {
		var o store.DeploymentOverride
		var enabled sql.NullBool
		var weight sql.NullInt64
		var updated int64
		if err := row.Scan(&o.DeploymentID, &enabled, &weight, &o.UpdatedBy, &updated); err != nil {
			return store.DeploymentOverride{}, err
		}
		if enabled.Valid {
			o.Enabled = &enabled.Bool
		}
		if weight.Valid {
			w := int(weight.Int64)
			o.Weight = &w
		}
		o.UpdatedAt = fromMicros(updated)
		return o, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: deployment overrides: %w", err)
	}
	return out, nil
}

// PutDeploymentOverride inserts or replaces the override of one deployment in one statement;
// UpdatedAt is set to the current time whatever o carries.
func (s *Store) PutDeploymentOverride(ctx context.Context, o store.DeploymentOverride) error {
	if err := store.ValidDeploymentOverride(o); err != nil {
		return fmt.Errorf("sqlite: put deployment override: %w", err)
	}
	var enabled sql.NullBool
	if o.Enabled != nil {
		enabled = sql.NullBool{Bool: *o.Enabled, Valid: true}
	}
	var weight sql.NullInt64
	if o.Weight != nil {
		weight = sql.NullInt64{Int64: int64(*o.Weight), Valid: true}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO deployment_overrides
		(deployment_id, enabled, weight, updated_by, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (deployment_id) DO UPDATE SET enabled = excluded.enabled, weight = excluded.weight,
			updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		o.DeploymentID, enabled, weight, o.UpdatedBy, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: put deployment override: %w", mapErr(err))
	}
	return nil
}

// DeleteDeploymentOverride removes one; ErrNotFound when there is none.
func (s *Store) DeleteDeploymentOverride(ctx context.Context, deploymentID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM deployment_overrides WHERE deployment_id = ?`, deploymentID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete deployment override %q: %w", deploymentID, err)
	}
	return nil
}
