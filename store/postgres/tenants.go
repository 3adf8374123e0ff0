package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/llmgate/llmgate/store"
)

// Row locks keep soft deletion sound against writers that run at the same time. A write that
// needs a live tenant or user (a new user, a new key) reads it FOR SHARE; deleting one takes a
// lock that conflicts with that (FOR NO KEY UPDATE, or the UPDATE's own). So either the delete
// waits for the new row to commit and then counts or revokes it, or the writer waits for the
// delete and then finds the row deleted. A foreign key alone is not enough: its FOR KEY SHARE
// lock does not conflict with an update of deleted_at.

// CreateTenant inserts a tenant; ErrConflict if the id exists. An empty Models is stored as NULL
// (every model), so "every model" has one representation.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tenants
		(id, name, models, metadata, created_at, updated_at, deleted_at, response_cache) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.Name, allowlist(t.Models), metadata(t.Metadata), orNow(t.CreatedAt), t.UpdatedAt, t.DeletedAt, t.ResponseCache)
	if err != nil {
		return fmt.Errorf("postgres: create tenant: %w", mapErr(err))
	}
	return nil
}

const tenantColumns = `id, name, models, metadata, created_at, updated_at, deleted_at, response_cache`

// GetTenant returns the tenant, soft-deleted or not, or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
	if err != nil {
		return store.Tenant{}, fmt.Errorf("postgres: get tenant: %w", notFound(err))
	}
	return t, nil
}

// ListTenants returns tenants by id in byte order (COLLATE "C", as SQLite and Go compare),
// live ones only unless f.IncludeDeleted.
func (s *Store) ListTenants(ctx context.Context, f store.TenantFilter) ([]store.Tenant, error) {
	var w where
	if !f.IncludeDeleted {
		w.cond("deleted_at IS NULL")
	}
	if f.Search != "" {
		p := w.arg(contains(f.Search))
		w.cond(`(id ILIKE ` + p + ` ESCAPE '\' OR name ILIKE ` + p + ` ESCAPE '\')`)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants`+w.sql()+
		` ORDER BY id COLLATE "C"`+w.page(limit, offset), w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Tenant, error) { return scanTenant(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list tenants: %w", err)
	}
	return out, nil
}

// UpdateTenant replaces the name, models and metadata of a live tenant. UpdatedAt is t.UpdatedAt
// when set, else the current time.
func (s *Store) UpdateTenant(ctx context.Context, t store.Tenant) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tenants SET name = $1, models = $2, metadata = $3, updated_at = $4,
		response_cache = $6 WHERE id = $5 AND deleted_at IS NULL`,
		t.Name, allowlist(t.Models), metadata(t.Metadata), orNowPtr(t.UpdatedAt), t.ID, t.ResponseCache)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: update tenant %q: %w", t.ID, err)
	}
	return nil
}

// DeleteTenant soft-deletes a live tenant that has no live users and no keys left unrevoked; the
// default tenant is never deleted.
func (s *Store) DeleteTenant(ctx context.Context, id string, at time.Time) error {
	if id == store.DefaultTenant {
		return fmt.Errorf("postgres: delete tenant %q: %w: the default tenant cannot be deleted", id, store.ErrConflict)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var deleted *time.Time
		err := tx.QueryRow(ctx, `SELECT deleted_at FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, id).Scan(&deleted)
		if err != nil {
			return notFound(err)
		}
		if deleted != nil {
			return store.ErrNotFound
		}
		var users, keys int64
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM users WHERE tenant_id = $1 AND deleted_at IS NULL),
			(SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL)`,
			id).Scan(&users, &keys); err != nil {
			return err
		}
		if users > 0 || keys > 0 {
			return fmt.Errorf("%w: it still has %d live users and %d keys not revoked",
				store.ErrConflict, users, keys)
		}
		_, err = tx.Exec(ctx, `UPDATE tenants SET deleted_at = $1 WHERE id = $2`, at, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete tenant %q: %w", id, err)
	}
	return nil
}

// CreateUser inserts a user, in the default tenant when TenantID is empty. The tenant must be
// live: the insert selects it (FOR SHARE), so a missing or deleted tenant inserts nothing and gives
// ErrNotFound.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	tenant := orDefaultTenant(u.TenantID)
	tag, err := s.pool.Exec(ctx, `INSERT INTO users
		(id, tenant_id, tier, external_id, email, metadata, created_at, updated_at, deleted_at)
		SELECT $1::text, t.id, $2::text, $3::text, $4::text, $5::jsonb, $6::timestamptz,
			$7::timestamptz, $8::timestamptz
		FROM tenants t WHERE t.id = $9 AND t.deleted_at IS NULL FOR SHARE`,
		u.ID, u.Tier, u.ExternalID, u.Email, metadata(u.Metadata), orNow(u.CreatedAt), u.UpdatedAt,
		u.DeletedAt, tenant)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: create user %q in tenant %q: %w", u.ID, tenant, err)
	}
	return nil
}

const userColumns = `id, tenant_id, tier, external_id, email, metadata, created_at, updated_at, deleted_at`

// GetUser returns the user, soft-deleted or not, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: get user: %w", notFound(err))
	}
	return u, nil
}

// ListUsers returns users newest first (ties by id, descending), live ones only unless
// f.IncludeDeleted.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, error) {
	var w where
	if !f.IncludeDeleted {
		w.cond("deleted_at IS NULL")
	}
	if f.TenantID != "" {
		w.add("tenant_id = ", f.TenantID)
	}
	if f.Tier != "" {
		w.add("tier = ", f.Tier)
	}
	if f.ExternalID != "" {
		w.add("external_id = ", f.ExternalID)
	}
	if f.Email != "" {
		w.cond(`email ILIKE ` + w.arg(contains(f.Email)) + ` ESCAPE '\'`)
	}
	if f.Search != "" {
		p := w.arg(contains(f.Search))
		w.cond(`(id ILIKE ` + p + ` ESCAPE '\' OR email ILIKE ` + p + ` ESCAPE '\' OR external_id ILIKE ` +
			p + ` ESCAPE '\')`)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users`+w.sql()+
		` ORDER BY created_at DESC, id DESC`+w.page(limit, offset), w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	return out, nil
}

// UpdateUser replaces the tier, external id, email and metadata of a live user. UpdatedAt is
// u.UpdatedAt when set, else the current time.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users
		SET tier = $1, external_id = $2, email = $3, metadata = $4, updated_at = $5
		WHERE id = $6 AND deleted_at IS NULL`,
		u.Tier, u.ExternalID, u.Email, metadata(u.Metadata), orNowPtr(u.UpdatedAt), u.ID)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: update user %q: %w", u.ID, err)
	}
	return nil
}

// DeleteUser soft-deletes a live user and revokes its keys not yet revoked, in one transaction.
// The first UPDATE locks the user row, so a key being created for it (which holds the row FOR
// SHARE) commits first and is revoked by the second, or sees the user deleted.
func (s *Store) DeleteUser(ctx context.Context, id string, at time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL`, at, id)
		if err := oneRow(tag, err); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL`, at, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete user %q: %w", id, err)
	}
	return nil
}

func scanTenant(row pgx.Row) (store.Tenant, error) {
	var t store.Tenant
	if err := row.Scan(&t.ID, &t.Name, &t.Models, &t.Metadata, &t.CreatedAt, &t.UpdatedAt,
		&t.DeletedAt, &t.ResponseCache); err != nil {
		return store.Tenant{}, err
	}
	if len(t.Models) == 0 {
		t.Models = nil
	}
	if t.Metadata == nil {
		t.Metadata = map[string]string{}
	}
	t.CreatedAt, t.UpdatedAt, t.DeletedAt = t.CreatedAt.UTC(), utcPtr(t.UpdatedAt), utcPtr(t.DeletedAt)
	return t, nil
}

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	if err := row.Scan(&u.ID, &u.TenantID, &u.Tier, &u.ExternalID, &u.Email, &u.Metadata,
		&u.CreatedAt, &u.UpdatedAt, &u.DeletedAt); err != nil {
		return store.User{}, err
	}
	if u.Metadata == nil {
		u.Metadata = map[string]string{}
	}
	u.CreatedAt, u.UpdatedAt, u.DeletedAt = u.CreatedAt.UTC(), utcPtr(u.UpdatedAt), utcPtr(u.DeletedAt)
	return u, nil
}

// oneRow maps the error of a statement that must touch a row, and gives ErrNotFound when it
// touched none.
func oneRow(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
