package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// CreateKey inserts the key and its first secret in one transaction. An empty TenantID takes the
// user's tenant, or the default tenant for a key without a user. The user (when named) and the
// tenant must be live: a key of a deleted one would outlive the deletion, which revoked the others.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey, secretHash string) error {
	created := orNow(k.CreatedAt)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tenant, err := keyTenant(ctx, tx, k.UserID, k.TenantID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_keys (id, name, prefix, user_id, tenant_id, models,
				metadata, expires_at, revoked_at, created_at, updated_at, response_cache)
			VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, $9, $10, $11, $12)`,
			k.ID, k.Name, k.Prefix, k.UserID, tenant, allowlist(k.Models), metadata(k.Metadata),
			k.ExpiresAt, k.RevokedAt, created, k.UpdatedAt, k.ResponseCache)
		if err != nil {
			return mapErr(err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
			VALUES ($1, $2, $3)`, secretHash, k.ID, created)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: create key %q: %w", k.ID, err)
	}
	return nil
}

// keyTenant resolves the tenant of a new key (tenantID, else the user's, else the default) and
// checks the user, when there is one, and the tenant exist and are not deleted. It holds both rows
// FOR SHARE until the transaction ends, so neither can be deleted under the new key.
func keyTenant(ctx context.Context, tx pgx.Tx, userID, tenantID string) (string, error) {
	if userID != "" {
		var userTenant string
		var deleted *time.Time
		err := tx.QueryRow(ctx, `SELECT tenant_id, deleted_at FROM users WHERE id = $1 FOR SHARE`, userID).
			Scan(&userTenant, &deleted)
		if err == nil && deleted != nil {
			err = store.ErrNotFound
		}
		if err != nil {
			return "", fmt.Errorf("user %q: %w", userID, notFound(err))
		}
		if tenantID == "" {
			tenantID = userTenant
		}
	}
	tenantID = orDefaultTenant(tenantID)
	var deleted *time.Time
	err := tx.QueryRow(ctx, `SELECT deleted_at FROM tenants WHERE id = $1 FOR SHARE`, tenantID).Scan(&deleted)
	if err == nil && deleted != nil {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("tenant %q: %w", tenantID, notFound(err))
	}
	return tenantID, nil
}

// keyColumns read a key with its tenant's allowlist: the FROM clause joins tenants t.
const keyColumns = `k.id, k.name, k.prefix, COALESCE(k.user_id, ''), k.tenant_id, k.models,
	k.expires_at, k.revoked_at, k.metadata, k.created_at, k.updated_at, t.models, k.response_cache,
	t.response_cache`

// KeyBySecret looks the key up in one query, through primary keys only: the secret's, the key's
// and its tenant's.
func (s *Store) KeyBySecret(ctx context.Context, secretHash string, now time.Time) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+`
		FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id JOIN tenants t ON t.id = k.tenant_id
		WHERE s.secret_hash = $1 AND (s.expires_at IS NULL OR s.expires_at > $2)`, secretHash, now))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: key by secret: %w", notFound(err))
	}
	return k, nil
}

// GetKey returns the key or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+`
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1`, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: get key: %w", notFound(err))
	}
	return k, nil
}

// ListKeys returns keys newest first (ties by id, descending).
func (s *Store) ListKeys(ctx context.Context, f store.KeyFilter) ([]store.APIKey, error) {
	var w where
	if f.UserID != "" {
		w.add("k.user_id = ", f.UserID)
	}
	if f.TenantID != "" {
		w.add("k.tenant_id = ", f.TenantID)
	}
	if f.Name != "" {
		w.cond(`k.name ILIKE ` + w.arg(contains(f.Name)) + ` ESCAPE '\'`)
	}
	if f.Prefix != "" {
		// Case-sensitive: key prefixes are base62, where case matters.
		w.cond(`starts_with(k.prefix, ` + w.arg(f.Prefix) + `)`)
	}
	now := orNow(f.Now)
	switch f.Status {
	case "":
	case store.KeyActive:
		w.cond("k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > " + w.arg(now) + ")")
	case store.KeyRevoked:
		w.cond("k.revoked_at IS NOT NULL")
	case store.KeyExpired:
		w.cond("k.revoked_at IS NULL AND k.expires_at <= " + w.arg(now))
	default:
		return nil, fmt.Errorf("postgres: list keys: %w", badKeyStatus(f.Status))
	}
	limit, offset := page(f.Limit, f.Offset)
	q := `SELECT ` + keyColumns + ` FROM api_keys k JOIN tenants t ON t.id = k.tenant_id` + w.sql() +
		` ORDER BY k.created_at DESC, k.id DESC` + w.page(limit, offset)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.APIKey, error) {
		return scanKey(row)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	return keys, nil
}

// RevokeKey marks the key revoked; a key already revoked keeps its first revocation time.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, at, id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: revoke key %q: %w", id, err)
	}
	return nil
}

// UpdateKey replaces the name, models, expiry and metadata of a key not revoked. UpdatedAt is
// k.UpdatedAt when set, else the current time.
func (s *Store) UpdateKey(ctx context.Context, k store.APIKey) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys
		SET name = $1, models = $2, expires_at = $3, metadata = $4, updated_at = $5, response_cache = $7
		WHERE id = $6 AND revoked_at IS NULL`,
		k.Name, allowlist(k.Models), k.ExpiresAt, metadata(k.Metadata), orNowPtr(k.UpdatedAt), k.ID, k.ResponseCache)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: update key %q: %w", k.ID, err)
	}
	return nil
}

// RotateKey gives a key not revoked a new secret and display prefix in one transaction. The
// secrets live at now keep working until graceUntil, or their own earlier expiry; those already
// expired stay so. The first UPDATE locks the key, so rotations and revocations of one key take
// turns.
func (s *Store) RotateKey(ctx context.Context, id, secretHash, prefix string, now, graceUntil time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET prefix = $1, updated_at = $2
			WHERE id = $3 AND revoked_at IS NULL`, prefix, now, id)
		if err := oneRow(tag, err); err != nil {
			return err
		}
		// Before the new secret exists, so it keeps no expiry.
		if _, err := tx.Exec(ctx, `UPDATE api_key_secrets SET expires_at = LEAST(COALESCE(expires_at, $1), $1)
			WHERE key_id = $2 AND (expires_at IS NULL OR expires_at > $3)`, graceUntil, id, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
			VALUES ($1, $2, $3)`, secretHash, id, now)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate key %q: %w", id, err)
	}
	return nil
}

func scanKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.UserID, &k.TenantID, &k.Models,
		&k.ExpiresAt, &k.RevokedAt, &k.Metadata, &k.CreatedAt, &k.UpdatedAt, &k.TenantModels,
		&k.ResponseCache, &k.TenantResponseCache); err != nil {
		return store.APIKey{}, err
	}
	if len(k.Models) == 0 {
		k.Models = nil
	}
	if len(k.TenantModels) == 0 {
		k.TenantModels = nil
	}
	if k.Metadata == nil {
		k.Metadata = map[string]string{}
	}
	k.ExpiresAt, k.RevokedAt, k.UpdatedAt = utcPtr(k.ExpiresAt), utcPtr(k.RevokedAt), utcPtr(k.UpdatedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// allowlist binds an allowlist for a jsonb column: NULL for "every model", so it has one
// representation.
func allowlist(models []string) any {
	if len(models) == 0 {
		return nil
	}
	return models
}

// metadata binds metadata for a NOT NULL jsonb column: nil is the empty object.
func metadata(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// contains is an ILIKE pattern (ESCAPE '\') that matches s literally as a substring, ignoring
// case. Prefix filters compare case-sensitively instead (starts_with).
func contains(s string) string { return "%" + store.EscapeLike(s) + "%" }

func badKeyStatus(status string) error {
	return fmt.Errorf("key status %q: want %q, %q or %q", status, store.KeyActive, store.KeyRevoked, store.KeyExpired)
}

// where builds a WHERE clause whose values are all bound parameters ($1, $2, …).
type where struct {
	conds []string
	args  []any
}

// add appends "<expr>$n"; expr must be a constant from the caller, never input.
func (w *where) add(expr string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, expr+"$"+strconv.Itoa(len(w.args)))
}

// arg binds v as the next parameter and returns its placeholder, for conditions that use a value
// twice or not at the end.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// cond appends a condition made of constants and placeholders from arg, never input.
func (w *where) cond(c string) { w.conds = append(w.conds, c) }

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// page binds LIMIT and OFFSET as the next two parameters.
func (w *where) page(limit, offset int) string {
	w.args = append(w.args, limit, offset)
	n := len(w.args)
	return fmt.Sprintf(" LIMIT $%d OFFSET $%d", n-1, n)
}
