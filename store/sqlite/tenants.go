package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/store"
)

// Every write below runs on the single writer connection, whose transactions begin IMMEDIATE: a
// check and the write it guards (a live tenant before a user joins it, no live users before the
// tenant is deleted) cannot interleave with another writer's.

// CreateTenant inserts a tenant; ErrConflict if the id exists. An empty Models is stored as NULL
// (every model), so "every model" has one representation.
func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	models, meta, err := encodeAllowlist(t.Models, t.Metadata)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO tenants
		(id, name, models, metadata, created_at, updated_at, deleted_at, response_cache) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, models, meta, micros(orNow(t.CreatedAt)), nullMicros(t.UpdatedAt),
		nullMicros(t.DeletedAt), t.ResponseCache)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", mapErr(err))
	}
	return nil
}

const tenantColumns = `id, name, models, metadata, created_at, updated_at, deleted_at, response_cache`

// GetTenant returns the tenant, soft-deleted or not, or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := scanTenant(s.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	if err != nil {
		return store.Tenant{}, fmt.Errorf("sqlite: get tenant: %w", notFound(err))
	}
	return t, nil
}

// ListTenants returns tenants by id (byte order), live ones only unless f.IncludeDeleted.
func (s *Store) ListTenants(ctx context.Context, f store.TenantFilter) ([]store.Tenant, error) {
	var w where
	if !f.IncludeDeleted {
		w.add("deleted_at IS NULL")
	}
	if f.Search != "" {
		p := contains(f.Search)
		w.add(`(id LIKE ? ESCAPE '\' OR name LIKE ? ESCAPE '\')`, p, p)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants`+w.sql()+
		` ORDER BY id LIMIT ? OFFSET ?`, append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tenants: %w", err)
	}
	out, err := collect(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tenants: %w", err)
	}
	return out, nil
}

// UpdateTenant replaces the name, models and metadata of a live tenant. UpdatedAt is t.UpdatedAt
// when set, else the current time.
func (s *Store) UpdateTenant(ctx context.Context, t store.Tenant) error {
	models, meta, err := encodeAllowlist(t.Models, t.Metadata)
	if err != nil {
		return fmt.Errorf("sqlite: update tenant: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE tenants SET name = ?, models = ?, metadata = ?, updated_at = ?,
		response_cache = ? WHERE id = ? AND deleted_at IS NULL`,
		t.Name, models, meta, micros(orNowPtr(t.UpdatedAt)), t.ResponseCache, t.ID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: update tenant %q: %w", t.ID, err)
	}
	return nil
}

// DeleteTenant soft-deletes a live tenant that has no live users and no keys left unrevoked; the
// default tenant is never deleted.
func (s *Store) DeleteTenant(ctx context.Context, id string, at time.Time) error {
	if id == store.DefaultTenant {
		return fmt.Errorf("sqlite: delete tenant %q: %w: the default tenant cannot be deleted", id, store.ErrConflict)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var deleted sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT deleted_at FROM tenants WHERE id = ?`, id).Scan(&deleted)
		if err != nil {
			return notFound(err)
		}
		if deleted.Valid {
			return store.ErrNotFound
		}
		var users, keys int64
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM users WHERE tenant_id = ? AND deleted_at IS NULL),
			(SELECT count(*) FROM api_keys WHERE tenant_id = ? AND revoked_at IS NULL)`,
			id, id).Scan(&users, &keys); err != nil {
			return err
		}
		if users > 0 || keys > 0 {
			return fmt.Errorf("%w: it still has %d live users and %d keys not revoked",
				store.ErrConflict, users, keys)
		}
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET deleted_at = ? WHERE id = ?`, micros(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete tenant %q: %w", id, err)
	}
	return nil
}

// CreateUser inserts a user, in the default tenant when TenantID is empty. The tenant must be live:
// the insert selects it, so a missing or deleted tenant inserts nothing and gives ErrNotFound.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	meta, err := encodeMetadata(u.Metadata)
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO users
		(id, tenant_id, tier, external_id, email, metadata, created_at, updated_at, deleted_at)
		SELECT ?, id, ?, ?, ?, ?, ?, ?, ? FROM tenants WHERE id = ? AND deleted_at IS NULL`,
		u.ID, u.Tier, u.ExternalID, u.Email, meta, micros(orNow(u.CreatedAt)),
		nullMicros(u.UpdatedAt), nullMicros(u.DeletedAt), orDefaultTenant(u.TenantID))
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: create user %q in tenant %q: %w", u.ID, orDefaultTenant(u.TenantID), err)
	}
	return nil
}

const userColumns = `id, tenant_id, tier, external_id, email, metadata, created_at, updated_at, deleted_at`

// GetUser returns the user, soft-deleted or not, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: get user: %w", notFound(err))
	}
	return u, nil
}

// ListUsers returns users newest first (ties by id, descending), live ones only unless
// f.IncludeDeleted.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, error) {
	var w where
	if !f.IncludeDeleted {
		w.add("deleted_at IS NULL")
	}
	if f.TenantID != "" {
		w.add("tenant_id = ?", f.TenantID)
	}
	if f.Tier != "" {
		w.add("tier = ?", f.Tier)
	}
	if f.ExternalID != "" {
		w.add("external_id = ?", f.ExternalID)
	}
	if f.Email != "" {
		w.add(`email LIKE ? ESCAPE '\'`, contains(f.Email))
	}
	if f.Search != "" {
		p := contains(f.Search)
		w.add(`(id LIKE ? ESCAPE '\' OR email LIKE ? ESCAPE '\' OR external_id LIKE ? ESCAPE '\')`, p, p, p)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users`+w.sql()+
		` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	out, err := collect(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return out, nil
}

// UpdateUser replaces the tier, external id, email and metadata of a live user. UpdatedAt is
// u.UpdatedAt when set, else the current time.
func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	meta, err := encodeMetadata(u.Metadata)
	if err != nil {
		return fmt.Errorf("sqlite: update user: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE users
		SET tier = ?, external_id = ?, email = ?, metadata = ?, updated_at = ?
		WHERE id = ? AND deleted_at IS NULL`,
		u.Tier, u.ExternalID, u.Email, meta, micros(orNowPtr(u.UpdatedAt)), u.ID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: update user %q: %w", u.ID, err)
	}
	return nil
}

// DeleteUser soft-deletes a live user and revokes its keys not yet revoked, in one transaction.
func (s *Store) DeleteUser(ctx context.Context, id string, at time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL`,
			micros(at), id)
		if err := oneRow(res, err); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`,
			micros(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user %q: %w", id, err)
	}
	return nil
}

func scanTenant(row scanner) (store.Tenant, error) {
	var t store.Tenant
	var models sql.NullString
	var meta string
	var created int64
	var updated, deleted sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &models, &meta, &created, &updated, &deleted, &t.ResponseCache); err != nil {
		return store.Tenant{}, err
	}
	var err error
	if t.Models, err = decodeModels(models); err != nil {
		return store.Tenant{}, fmt.Errorf("tenant %q: %w", t.ID, err)
	}
	if t.Metadata, err = decodeMetadata(meta); err != nil {
		return store.Tenant{}, fmt.Errorf("tenant %q: %w", t.ID, err)
	}
	t.CreatedAt, t.UpdatedAt, t.DeletedAt = fromMicros(created), fromNullMicros(updated), fromNullMicros(deleted)
	return t, nil
}

func scanUser(row scanner) (store.User, error) {
	var u store.User
	var meta string
	var created int64
	var updated, deleted sql.NullInt64
	if err := row.Scan(&u.ID, &u.TenantID, &u.Tier, &u.ExternalID, &u.Email, &meta, &created,
		&updated, &deleted); err != nil {
		return store.User{}, err
	}
	var err error
	if u.Metadata, err = decodeMetadata(meta); err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", u.ID, err)
	}
	u.CreatedAt, u.UpdatedAt, u.DeletedAt = fromMicros(created), fromNullMicros(updated), fromNullMicros(deleted)
	return u, nil
}

// inTx runs fn in a writer transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return mapErr(tx.Commit())
}

// oneRow turns the result of an UPDATE or INSERT … SELECT that must touch a row into ErrNotFound
// when it touched none; err (the statement's) is mapped and returned first.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
