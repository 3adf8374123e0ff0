package sqlite

import (
	"context"
	"fmt"

	"github.com/llmgate/llmgate/store"
)

// CatalogEntries returns every catalog entry: providers first, then models, each by name in
// byte order.
func (s *Store) CatalogEntries(ctx context.Context) ([]store.CatalogEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, name, spec, coalesce(secret, ''), created_at, updated_by, updated_at
		FROM catalog_entries ORDER BY kind = 'model', name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: catalog entries: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.CatalogEntry, error) {
		var e store.CatalogEntry
		var spec string
		var created, updated int64
		if err := row.Scan(&e.Kind, &e.Name, &spec, &e.Secret, &created, &e.UpdatedBy, &updated); err != nil {
			return store.CatalogEntry{}, err
		}
		e.Spec, e.CreatedAt, e.UpdatedAt = []byte(spec), fromMicros(created), fromMicros(updated)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: catalog entries: %w", err)
	}
	return out, nil
}

// CreateCatalogEntry inserts an entry; ErrConflict when one of that kind and name exists.
func (s *Store) CreateCatalogEntry(ctx context.Context, e store.CatalogEntry) error {
	if err := store.ValidCatalogEntry(e); err != nil {
		return fmt.Errorf("sqlite: create catalog entry: %w", err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO catalog_entries (kind, name, spec, secret, created_at, updated_by, updated_at)
		VALUES (?, ?, ?, nullif(?, ''), ?, ?, ?)`,
		string(e.Kind), e.Name, string(e.Spec), e.Secret, micros(e.CreatedAt), e.UpdatedBy, micros(e.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create catalog %s %q: %w", e.Kind, e.Name, mapErr(err))
	}
	return nil
}

// UpdateCatalogEntry replaces an entry's spec, secret and update stamp; ErrNotFound when none.
func (s *Store) UpdateCatalogEntry(ctx context.Context, e store.CatalogEntry) error {
	if err := store.ValidCatalogEntry(e); err != nil {
		return fmt.Errorf("sqlite: update catalog entry: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE catalog_entries SET spec = ?, secret = nullif(?, ''),
		updated_by = ?, updated_at = ? WHERE kind = ? AND name = ?`,
		string(e.Spec), e.Secret, e.UpdatedBy, micros(e.UpdatedAt), string(e.Kind), e.Name)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: update catalog %s %q: %w", e.Kind, e.Name, err)
	}
	return nil
}

// DeleteCatalogEntry removes one; ErrNotFound when there is none.
func (s *Store) DeleteCatalogEntry(ctx context.Context, kind store.CatalogKind, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM catalog_entries WHERE kind = ? AND name = ?`, string(kind), name)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete catalog %s %q: %w", kind, name, err)
	}
	return nil
}
