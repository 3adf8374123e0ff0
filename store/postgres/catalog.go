package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// CatalogEntries returns every catalog entry: providers first, then models, each by name in
// byte order (COLLATE "C", as SQLite and Go compare).
func (s *Store) CatalogEntries(ctx context.Context) ([]store.CatalogEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, name, spec::text, coalesce(secret, ''), created_at, updated_by, updated_at
		FROM catalog_entries ORDER BY kind = 'model', name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: catalog entries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CatalogEntry, error) {
		var e store.CatalogEntry
		var spec string
		err := row.Scan(&e.Kind, &e.Name, &spec, &e.Secret, &e.CreatedAt, &e.UpdatedBy, &e.UpdatedAt)
		e.Spec = []byte(spec)
		e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: catalog entries: %w", err)
	}
	return out, nil
}

// CreateCatalogEntry inserts an entry; ErrConflict when one of that kind and name exists.
func (s *Store) CreateCatalogEntry(ctx context.Context, e store.CatalogEntry) error {
	if err := store.ValidCatalogEntry(e); err != nil {
		return fmt.Errorf("postgres: create catalog entry: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO catalog_entries (kind, name, spec, secret, created_at, updated_by, updated_at)
		VALUES ($1, $2, $3::jsonb, nullif($4, ''), $5, $6, $7)`,
		string(e.Kind), e.Name, string(e.Spec), e.Secret, e.CreatedAt, e.UpdatedBy, e.UpdatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create catalog %s %q: %w", e.Kind, e.Name, mapErr(err))
	}
	return nil
}

// UpdateCatalogEntry replaces an entry's spec, secret and update stamp; ErrNotFound when none.
func (s *Store) UpdateCatalogEntry(ctx context.Context, e store.CatalogEntry) error {
	if err := store.ValidCatalogEntry(e); err != nil {
		return fmt.Errorf("postgres: update catalog entry: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE catalog_entries SET spec = $3::jsonb, secret = nullif($4, ''),
		updated_by = $5, updated_at = $6 WHERE kind = $1 AND name = $2`,
		string(e.Kind), e.Name, string(e.Spec), e.Secret, e.UpdatedBy, e.UpdatedAt)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: update catalog %s %q: %w", e.Kind, e.Name, err)
	}
	return nil
}

// DeleteCatalogEntry removes one; ErrNotFound when there is none.
func (s *Store) DeleteCatalogEntry(ctx context.Context, kind store.CatalogKind, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM catalog_entries WHERE kind = $1 AND name = $2`, string(kind), name)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete catalog %s %q: %w", kind, name, err)
	}
	return nil
}
