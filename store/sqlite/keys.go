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

// CreateTenant inserts a tenant; ErrConflict if the id exists.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`,
		t.ID, t.Name, micros(orNow(t.CreatedAt)))
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", mapErr(err))
	}
	return nil
}

// GetTenant returns the tenant or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE id = ?`, id).
		Scan(&t.ID, &t.Name, &created)
	if err != nil {
		return store.Tenant{}, fmt.Errorf("sqlite: get tenant: %w", notFound(err))
	}
	t.CreatedAt = fromMicros(created)
	return t, nil
}

// CreateUser inserts a user, in the default tenant when TenantID is empty.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO users (id, tenant_id, tier, external_id, email, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, orDefaultTenant(u.TenantID), u.Tier, u.ExternalID, u.Email, micros(orNow(u.CreatedAt)))
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", mapErr(err))
	}
	return nil
}

// GetUser returns the user or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	var u store.User
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT id, tenant_id, tier, external_id, email, created_at
		FROM users WHERE id = ?`, id).
		Scan(&u.ID, &u.TenantID, &u.Tier, &u.ExternalID, &u.Email, &created)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: get user: %w", notFound(err))
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

// CreateKey inserts the key and its first secret in one transaction. An empty TenantID takes the
// user's tenant, or the default tenant for a key without a user.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey, secretHash string) error {
	models, err := encodeModels(k.Models)
	if err != nil {
		return fmt.Errorf("sqlite: create key: %w", err)
	}
	created := micros(orNow(k.CreatedAt))
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: create key: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO api_keys
		(id, name, prefix, user_id, tenant_id, models, expires_at, revoked_at, created_at)
		VALUES (?, ?, ?, NULLIF(?, ''),
			COALESCE(NULLIF(?, ''), (SELECT tenant_id FROM users WHERE id = ?), ?),
			?, ?, ?, ?)`,
		k.ID, k.Name, k.Prefix, k.UserID, k.TenantID, k.UserID, store.DefaultTenant,
		models, nullMicros(k.ExpiresAt), nullMicros(k.RevokedAt), created)
	if err != nil {
		return fmt.Errorf("sqlite: create key: %w", mapErr(err))
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
		VALUES (?, ?, ?)`, secretHash, k.ID, created)
	if err != nil {
		return fmt.Errorf("sqlite: create key secret: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create key: %w", mapErr(err))
	}
	return nil
}

const keyColumns = `k.id, k.name, k.prefix, COALESCE(k.user_id, ''), k.tenant_id, k.models,
	k.expires_at, k.revoked_at, k.created_at`

// KeyBySecret looks the key up through the secrets table's primary key in one query.
func (s *Store) KeyBySecret(ctx context.Context, secretHash string, now time.Time) (store.APIKey, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+`
		FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id
		WHERE s.secret_hash = ? AND (s.expires_at IS NULL OR s.expires_at > ?)`,
		secretHash, micros(now)))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: key by secret: %w", notFound(err))
	}
	return k, nil
}

// GetKey returns the key or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys k WHERE k.id = ?`, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: get key: %w", notFound(err))
	}
	return k, nil
}

// ListKeys returns keys newest first.
func (s *Store) ListKeys(ctx context.Context, f store.KeyFilter) ([]store.APIKey, error) {
	var where []string
	var args []any
	if f.UserID != "" {
		where, args = append(where, "k.user_id = ?"), append(args, f.UserID)
	}
	if f.TenantID != "" {
		where, args = append(where, "k.tenant_id = ?"), append(args, f.TenantID)
	}
	q := `SELECT ` + keyColumns + ` FROM api_keys k`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit, offset := page(f.Limit, f.Offset)
	q += ` ORDER BY k.created_at DESC, k.id DESC LIMIT ? OFFSET ?`
	rows, err := s.r.QueryContext(ctx, q, append(args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	return out, nil
}

// RevokeKey marks the key revoked; a key already revoked keeps its first revocation time.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: revoke key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: revoke key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (store.APIKey, error) {
	var k store.APIKey
	var models sql.NullString
	var expires, revoked sql.NullInt64
	var created int64
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.UserID, &k.TenantID, &models,
		&expires, &revoked, &created); err != nil {
		return store.APIKey{}, err
	}
	if models.Valid {
		if err := json.Unmarshal([]byte(models.String), &k.Models); err != nil {
			return store.APIKey{}, fmt.Errorf("decode models of key %q: %w", k.ID, err)
		}
		if len(k.Models) == 0 {
			k.Models = nil
		}
	}
	k.ExpiresAt, k.RevokedAt, k.CreatedAt = fromNullMicros(expires), fromNullMicros(revoked), fromMicros(created)
	return k, nil
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

func orDefaultTenant(id string) string {
	if id == "" {
		return store.DefaultTenant
	}
	return id
}
