package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/store"
)

var _ store.ConsoleSessionStore = (*Store)(nil)

// CreateConsoleSession inserts a session; ErrConflict when the id hash exists.
func (s *Store) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO console_sessions
		(id_hash, actor, role, tenant_id, token_check, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		cs.IDHash, cs.Actor, cs.Role, cs.TenantID, cs.TokenCheck, micros(orNow(cs.CreatedAt)), micros(cs.ExpiresAt))
	if err != nil {
		return fmt.Errorf("sqlite: create console session: %w", mapErr(err))
	}
	return nil
}

// ConsoleSession returns the session that has not expired at now.
func (s *Store) ConsoleSession(ctx context.Context, idHash string, now time.Time) (store.ConsoleSession, error) {
	cs := store.ConsoleSession{IDHash: idHash}
	var created, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT actor, role, tenant_id, token_check, created_at, expires_at
		FROM console_sessions WHERE id_hash = ? AND expires_at > ?`, idHash, micros(now)).
		Scan(&cs.Actor, &cs.Role, &cs.TenantID, &cs.TokenCheck, &created, &expires)
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("sqlite: console session: %w", notFound(err))
	}
	cs.CreatedAt, cs.ExpiresAt = fromMicros(created), fromMicros(expires)
	return cs, nil
}

// ExtendConsoleSession moves a session's expiry later.
func (s *Store) ExtendConsoleSession(ctx context.Context, idHash string, expiresAt time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE console_sessions SET expires_at = MAX(expires_at, ?) WHERE id_hash = ?`, micros(expiresAt), idHash)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: extend console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession removes a session.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete console session: %w", err)
	}
	return nil
}

// DeleteConsoleSessionsOf removes every session of an actor.
func (s *Store) DeleteConsoleSessionsOf(ctx context.Context, actor string) (int64, error) {
	return s.deleteSessions(ctx, "delete console sessions of actor", `DELETE FROM console_sessions WHERE actor = ?`, actor)
}

// PurgeConsoleSessions removes the sessions expired before `before`.
func (s *Store) PurgeConsoleSessions(ctx context.Context, before time.Time) (int64, error) {
	return s.deleteSessions(ctx, "purge console sessions", `DELETE FROM console_sessions WHERE expires_at <= ?`, micros(before))
}

func (s *Store) deleteSessions(ctx context.Context, what, query string, arg any) (int64, error) {
	res, err := s.w.ExecContext(ctx, query, arg)
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return n, nil
}
