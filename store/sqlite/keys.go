package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llmgate/llmgate/store"
)

// CreateKey inserts the key and its first secret in one transaction. An empty TenantID takes the
// user's tenant, or the default tenant for a key without a user. The user (when named) and the
// tenant must be live: a key of a deleted one would outlive the deletion, which revoked the others.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey, secretHash string) error {
	models, meta, err := encodeAllowlist(k.Models, k.Metadata)
	if err != nil {
		return fmt.Errorf("sqlite: create key: %w", err)
	}
	created := micros(orNow(k.CreatedAt))
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		tenant, err := keyTenant(ctx, tx, k.UserID, k.TenantID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, prefix, user_id, tenant_id, models,
				metadata, expires_at, revoked_at, created_at, updated_at, response_cache)
			VALUES (?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Name, k.Prefix, k.UserID, tenant, models, meta, nullMicros(k.ExpiresAt),
			nullMicros(k.RevokedAt), created, nullMicros(k.UpdatedAt), k.ResponseCache)
		if err != nil {
			return mapErr(err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
			VALUES (?, ?, ?)`, secretHash, k.ID, created)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create key %q: %w", k.ID, err)
	}
	return nil
}

// keyTenant resolves the tenant of a new key (tenantID, else the user's, else the default) and
// checks the user, when there is one, and the tenant exist and are not deleted.
func keyTenant(ctx context.Context, tx *sql.Tx, userID, tenantID string) (string, error) {
	if userID != "" {
		var userTenant string
		var deleted sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT tenant_id, deleted_at FROM users WHERE id = ?`, userID).
			Scan(&userTenant, &deleted)
		if err == nil && deleted.Valid {
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
	var deleted sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT deleted_at FROM tenants WHERE id = ?`, tenantID).Scan(&deleted)
	if err == nil && deleted.Valid {
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
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+`
		FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id JOIN tenants t ON t.id = k.tenant_id
		WHERE s.secret_hash = ? AND (s.expires_at IS NULL OR s.expires_at > ?)`,
		secretHash, micros(now)))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: key by secret: %w", notFound(err))
	}
	return k, nil
}

// GetKey returns the key or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+`
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?`, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: get key: %w", notFound(err))
	}
	return k, nil
}

// ListKeys returns keys newest first (ties by id, descending).
func (s *Store) ListKeys(ctx context.Context, f store.KeyFilter) ([]store.APIKey, error) {
	var w where
	if f.UserID != "" {
		w.add("k.user_id = ?", f.UserID)
	}
	if f.TenantID != "" {
		w.add("k.tenant_id = ?", f.TenantID)
	}
	if f.Name != "" {
		w.add(`k.name LIKE ? ESCAPE '\'`, contains(f.Name))
	}
	if f.Prefix != "" {
		// Case-sensitive: key prefixes are base62, where case matters.
		w.add(`substr(k.prefix, 1, length(?)) = ?`, f.Prefix, f.Prefix)
	}
	now := micros(orNow(f.Now))
	switch f.Status {
	case "":
	case store.KeyActive:
		w.add("k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)", now)
	case store.KeyRevoked:
		w.add("k.revoked_at IS NOT NULL")
	case store.KeyExpired:
		w.add("k.revoked_at IS NULL AND k.expires_at <= ?", now)
	default:
		return nil, fmt.Errorf("sqlite: list keys: %w", badKeyStatus(f.Status))
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys k JOIN tenants t ON t.id = k.tenant_id`+
		w.sql()+` ORDER BY k.created_at DESC, k.id DESC LIMIT ? OFFSET ?`, append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	out, err := collect(rows, scanKey)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	return out, nil
}

// RevokeKey marks the key revoked; a key already revoked keeps its first revocation time.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, micros(at), id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: revoke key %q: %w", id, err)
	}
	return nil
}

// UpdateKey replaces the name, models, expiry and metadata of a key not revoked. UpdatedAt is
// k.UpdatedAt when set, else the current time.
func (s *Store) UpdateKey(ctx context.Context, k store.APIKey) error {
	models, meta, err := encodeAllowlist(k.Models, k.Metadata)
	if err != nil {
		return fmt.Errorf("sqlite: update key: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys
		SET name = ?, models = ?, expires_at = ?, metadata = ?, updated_at = ?, response_cache = ?
		WHERE id = ? AND revoked_at IS NULL`,
		k.Name, models, nullMicros(k.ExpiresAt), meta, micros(orNowPtr(k.UpdatedAt)), k.ResponseCache, k.ID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: update key %q: %w", k.ID, err)
	}
	return nil
}

// RotateKey gives a key not revoked a new secret and display prefix in one transaction. The
// secrets live at now keep working until graceUntil, or their own earlier expiry; those already
// expired stay so.
func (s *Store) RotateKey(ctx context.Context, id, secretHash, prefix string, now, graceUntil time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET prefix = ?, updated_at = ?
			WHERE id = ? AND revoked_at IS NULL`, prefix, micros(now), id)
		if err := oneRow(res, err); err != nil {
			return err
		}
		// Before the new secret exists, so it keeps no expiry.
		grace := micros(graceUntil)
		if _, err := tx.ExecContext(ctx, `UPDATE api_key_secrets SET expires_at = min(COALESCE(expires_at, ?), ?)
			WHERE key_id = ? AND (expires_at IS NULL OR expires_at > ?)`,
			grace, grace, id, micros(now)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
			VALUES (?, ?, ?)`, secretHash, id, micros(now))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate key %q: %w", id, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (store.APIKey, error) {
	var k store.APIKey
	var models, tenantModels sql.NullString
	var meta string
	var expires, revoked, updated sql.NullInt64
	var created int64
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.UserID, &k.TenantID, &models,
		&expires, &revoked, &meta, &created, &updated, &tenantModels, &k.ResponseCache, &k.TenantResponseCache); err != nil {
		return store.APIKey{}, err
	}
	var err error
	if k.Models, err = decodeModels(models); err != nil {
		return store.APIKey{}, fmt.Errorf("key %q: %w", k.ID, err)
	}
	if k.TenantModels, err = decodeModels(tenantModels); err != nil {
		return store.APIKey{}, fmt.Errorf("tenant of key %q: %w", k.ID, err)
	}
	if k.Metadata, err = decodeMetadata(meta); err != nil {
		return store.APIKey{}, fmt.Errorf("key %q: %w", k.ID, err)
	}
	k.ExpiresAt, k.RevokedAt, k.UpdatedAt = fromNullMicros(expires), fromNullMicros(revoked), fromNullMicros(updated)
	k.CreatedAt = fromMicros(created)
	return k, nil
}

// collect scans every row with scan, closing rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// where builds a WHERE clause whose values are all bound parameters.
type where struct {
	conds []string
	args  []any
}

// add appends a condition and the values of its '?' placeholders; cond must be a constant from
// the caller, never input.
func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// contains is a LIKE pattern (ESCAPE '\') that matches s literally as a substring; SQLite's LIKE
// ignores ASCII case. Prefix filters compare case-sensitively instead (substr).
func contains(s string) string { return "%" + store.EscapeLike(s) + "%" }

func badKeyStatus(status string) error {
	return fmt.Errorf("key status %q: want %q, %q or %q", status, store.KeyActive, store.KeyRevoked, store.KeyExpired)
}

// encodeAllowlist encodes an allowlist (see encodeModels) and metadata for writing.
func encodeAllowlist(models []string, meta map[string]string) (sql.NullString, string, error) {
	m, err := encodeModels(models)
	if err != nil {
		return sql.NullString{}, "", err
	}
	md, err := encodeMetadata(meta)
	if err != nil {
		return sql.NullString{}, "", err
	}
	return m, md, nil
}

// encodeModels stores an empty allowlist as NULL, so "every model" has one representation.
func encodeModels(models []string) (sql.NullString, error) {
	if len(models) == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(models)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encode models: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeModels reads an allowlist: NULL (and an empty array) is nil, every model.
func decodeModels(v sql.NullString) ([]string, error) {
	if !v.Valid {
		return nil, nil
	}
	var models []string
	if err := json.Unmarshal([]byte(v.String), &models); err != nil {
		return nil, fmt.Errorf("decode models: %w", err)
	}
	if len(models) == 0 {
		return nil, nil
	}
	return models, nil
}

// encodeMetadata writes nil metadata as the empty object, the column's default.
func encodeMetadata(meta map[string]string) (string, error) {
	if len(meta) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("encode metadata: %w", err)
	}
	return string(b), nil
}

// decodeMetadata reads metadata, never nil.
func decodeMetadata(v string) (map[string]string, error) {
	meta := map[string]string{}
	if err := json.Unmarshal([]byte(v), &meta); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	if meta == nil { // the JSON null
		meta = map[string]string{}
	}
	return meta, nil
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
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

func orNowPtr(t *time.Time) time.Time {
	if t == nil {
		return time.Now()
	}
	return orNow(*t)
}

func orDefaultTenant(id string) string {
	if id == "" {
		return store.DefaultTenant
	}
	return id
}
