package store

import (
	"context"
	"time"
)

// ConsoleSession is a signed-in browser session of the admin console. Only the SHA-256 of the
// session id is stored, so a reader of the database cannot sign in with what it finds there.
type ConsoleSession struct {
	// IDHash is the hex SHA-256 of the opaque session id the browser holds in its cookie.
	IDHash string
	// Actor is who signed in: "bootstrap" or the admin token's id; Role and TenantID are that
	// token's when the session was made.
	Actor    string
	Role     string
	TenantID string
	// TokenCheck binds the session to the token it was made from (a keyed hash the admin API
	// computes and compares), so a changed bootstrap token ends its sessions.
	TokenCheck string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// ConsoleSessionStore keeps console sessions, shared by every replica.
type ConsoleSessionStore interface {
	// CreateConsoleSession inserts a session; ErrConflict when the id hash exists.
	CreateConsoleSession(ctx context.Context, s ConsoleSession) error
	// ConsoleSession returns the session with this id hash that has not expired at now;
	// ErrNotFound when there is none.
	ConsoleSession(ctx context.Context, idHash string, now time.Time) (ConsoleSession, error)
	// ExtendConsoleSession moves a session's expiry to expiresAt when that is later (a sliding
	// session in use); ErrNotFound when there is no such session.
	ExtendConsoleSession(ctx context.Context, idHash string, expiresAt time.Time) error
	// DeleteConsoleSession removes a session; ErrNotFound when there is none.
	DeleteConsoleSession(ctx context.Context, idHash string) error
	// DeleteConsoleSessionsOf removes every session of an actor and returns how many.
	DeleteConsoleSessionsOf(ctx context.Context, actor string) (int64, error)
	// PurgeConsoleSessions removes the sessions expired before `before` and returns how many.
	PurgeConsoleSessions(ctx context.Context, before time.Time) (int64, error)
}
