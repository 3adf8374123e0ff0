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

// CreateTenant inserts a tenant; ErrConflict if the id exists.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)`,
		t.ID, t.Name, orNow(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create tenant: %w", mapErr(err))
	}
	return nil
}

// GetTenant returns the tenant or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM tenants WHERE id = $1`, id).
		Scan(&t.ID, &t.Name, &t.CreatedAt)
	if err != nil {
		return store.Tenant{}, fmt.Errorf("postgres: get tenant: %w", notFound(err))
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// CreateUser inserts a user, in the default tenant when TenantID is empty.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (id, tenant_id, tier, external_id, email, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		u.ID, orDefaultTenant(u.TenantID), u.Tier, u.ExternalID, u.Email, orNow(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", mapErr(err))
	}
	return nil
}

// GetUser returns the user or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	var u store.User
	err := s.pool.QueryRow(ctx, `SELECT id, tenant_id, tier, external_id, email, created_at
		FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.TenantID, &u.Tier, &u.ExternalID, &u.Email, &u.CreatedAt)
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: get user: %w", notFound(err))
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// CreateKey inserts the key and its first secret in one transaction. An empty TenantID takes the
// user's tenant, or the default tenant for a key without a user.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey, secretHash string) error {
	var models any // NULL for "every model", so it has one representation
	if len(k.Models) > 0 {
		models = k.Models
	}
	created := orNow(k.CreatedAt)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO api_keys
			(id, name, prefix, user_id, tenant_id, models, expires_at, revoked_at, created_at)
			VALUES ($1, $2, $3, NULLIF($4, ''),
				COALESCE(NULLIF($5, ''), (SELECT tenant_id FROM users WHERE id = $4), $6),
				$7, $8, $9, $10)`,
			k.ID, k.Name, k.Prefix, k.UserID, k.TenantID, store.DefaultTenant,
			models, k.ExpiresAt, k.RevokedAt, created)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
			VALUES ($1, $2, $3)`, secretHash, k.ID, created)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create key: %w", mapErr(err))
	}
	return nil
}

const keyColumns = `k.id, k.name, k.prefix, COALESCE(k.user_id, ''), k.tenant_id, k.models,
	k.expires_at, k.revoked_at, k.created_at`

// KeyBySecret looks the key up through the secrets table's primary key in one query.
func (s *Store) KeyBySecret(ctx context.Context, secretHash string, now time.Time) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+`
		FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id
		WHERE s.secret_hash = $1 AND (s.expires_at IS NULL OR s.expires_at > $2)`, secretHash, now))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: key by secret: %w", notFound(err))
	}
	return k, nil
}

// GetKey returns the key or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys k WHERE k.id = $1`, id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: get key: %w", notFound(err))
	}
	return k, nil
}

// ListKeys returns keys newest first.
func (s *Store) ListKeys(ctx context.Context, f store.KeyFilter) ([]store.APIKey, error) {
	var w where
	if f.UserID != "" {
		w.add("k.user_id = ", f.UserID)
	}
	if f.TenantID != "" {
		w.add("k.tenant_id = ", f.TenantID)
	}
	limit, offset := page(f.Limit, f.Offset)
	q := `SELECT ` + keyColumns + ` FROM api_keys k` + w.sql() +
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
	if err != nil {
		return fmt.Errorf("postgres: revoke key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: revoke key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.UserID, &k.TenantID, &k.Models,
		&k.ExpiresAt, &k.RevokedAt, &k.CreatedAt); err != nil {
		return store.APIKey{}, err
	}
	if len(k.Models) == 0 {
		k.Models = nil
	}
	k.ExpiresAt, k.RevokedAt, k.CreatedAt = utcPtr(k.ExpiresAt), utcPtr(k.RevokedAt), k.CreatedAt.UTC()
	return k, nil
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
