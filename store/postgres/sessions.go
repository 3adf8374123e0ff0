package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/store"
)

var _ store.ConsoleSessionStore = (*Store)(nil)

// CreateConsoleSession inserts a session; ErrConflict when the id hash exists.
func (s *Store) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO console_sessions
		(id_hash, actor, role, tenant_id, token_check, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		cs.IDHash, cs.Actor, cs.Role, cs.TenantID, cs.TokenCheck, orNow(cs.CreatedAt), cs.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create console session: %w", mapErr(err))
	}
	return nil
}

// ConsoleSession returns the session that has not expired at now.
func (s *Store) ConsoleSession(ctx context.Context, idHash string, now time.Time) (store.ConsoleSession, error) {
	cs := store.ConsoleSession{IDHash: idHash}
	err := s.pool.QueryRow(ctx, `SELECT actor, role, tenant_id, token_check, created_at, expires_at
		FROM console_sessions WHERE id_hash = $1 AND expires_at > $2`, idHash, now).
		Scan(&cs.Actor, &cs.Role, &cs.TenantID, &cs.TokenCheck, &cs.CreatedAt, &cs.ExpiresAt)
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("postgres: console session: %w", notFound(err))
	}
	cs.CreatedAt, cs.ExpiresAt = cs.CreatedAt.UTC(), cs.ExpiresAt.UTC()
	return cs, nil
}

// ExtendConsoleSession moves a session's expiry later.
func (s *Store) ExtendConsoleSession(ctx context.Context, idHash string, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE console_sessions SET expires_at = GREATEST(expires_at, $2) WHERE id_hash = $1`, idHash, expiresAt)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: extend console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession removes a session.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete console session: %w", err)
	}
	return nil
}

// DeleteConsoleSessionsOf removes every session of an actor.
func (s *Store) DeleteConsoleSessionsOf(ctx context.Context, actor string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE actor = $1`, actor)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete console sessions of actor: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PurgeConsoleSessions removes the sessions expired before `before`.
func (s *Store) PurgeConsoleSessions(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, before)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge console sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
