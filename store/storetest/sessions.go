package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// testConsoleSessions: a session round-trips, is gone once expired, deleted, deleted with its
// actor's or purged, and its id hash is unique.
func testConsoleSessions(t *testing.T, s store.Store) {
	c := ctx(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a := store.ConsoleSession{IDHash: "aa01", Actor: "tok_1", Role: store.RoleViewer, TenantID: "acme",
		TokenCheck: "check-a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	b := store.ConsoleSession{IDHash: "bb02", Actor: "bootstrap", Role: store.RoleAdmin,
		TokenCheck: "check-b", CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
	a2 := a
	a2.IDHash, a2.ExpiresAt = "aa03", now.Add(3*time.Hour)
	for _, x := range []store.ConsoleSession{a, b, a2} {
		if err := s.CreateConsoleSession(c, x); err != nil {
			t.Fatalf("CreateConsoleSession %s: %v", x.IDHash, err)
		}
	}
	if err := s.CreateConsoleSession(c, a); !errors.Is(err, store.ErrConflict) {
		t.Errorf("the same id hash again: %v, want ErrConflict", err)
	}
	got, err := s.ConsoleSession(c, a.IDHash, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("ConsoleSession: %v", err)
	}
	if !got.CreatedAt.Equal(a.CreatedAt) || !got.ExpiresAt.Equal(a.ExpiresAt) {
		t.Errorf("times: got %v/%v, want %v/%v", got.CreatedAt, got.ExpiresAt, a.CreatedAt, a.ExpiresAt)
	}
	got.CreatedAt, got.ExpiresAt = a.CreatedAt, a.ExpiresAt
	if got != a {
		t.Errorf("ConsoleSession = %+v, want %+v", got, a)
	}
	if _, err := s.ConsoleSession(c, a.IDHash, a.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("at its expiry: %v, want ErrNotFound", err)
	}
	if _, err := s.ConsoleSession(c, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown: %v, want ErrNotFound", err)
	}
	// Extending moves the expiry later, never earlier.
	if err := s.ExtendConsoleSession(c, b.IDHash, now.Add(4*time.Hour)); err != nil {
		t.Fatalf("ExtendConsoleSession: %v", err)
	}
	if err := s.ExtendConsoleSession(c, b.IDHash, now.Add(time.Hour)); err != nil {
		t.Fatalf("ExtendConsoleSession earlier: %v", err)
	}
	if got, err := s.ConsoleSession(c, b.IDHash, now.Add(3*time.Hour)); err != nil || !got.ExpiresAt.Equal(now.Add(4*time.Hour)) {
		t.Errorf("after extending: %+v, %v; want expiry %v", got, err, now.Add(4*time.Hour))
	}
	if err := s.ExtendConsoleSession(c, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("extending an unknown session: %v, want ErrNotFound", err)
	}
	if err := s.DeleteConsoleSession(c, b.IDHash); err != nil {
		t.Fatalf("DeleteConsoleSession: %v", err)
	}
	if _, err := s.ConsoleSession(c, b.IDHash, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteConsoleSession(c, b.IDHash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted twice: %v, want ErrNotFound", err)
	}
	// Purge takes the expired ones only.
	n, err := s.PurgeConsoleSessions(c, now.Add(90*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("PurgeConsoleSessions = %d, %v; want 1 (the first)", n, err)
	}
	if _, err := s.ConsoleSession(c, a2.IDHash, now); err != nil {
		t.Errorf("a live session was purged: %v", err)
	}
	if err := s.CreateConsoleSession(c, a); err != nil {
		t.Fatalf("CreateConsoleSession again: %v", err)
	}
	if n, err := s.DeleteConsoleSessionsOf(c, "tok_1"); err != nil || n != 2 {
		t.Fatalf("DeleteConsoleSessionsOf = %d, %v; want 2", n, err)
	}
	for _, h := range []string{a.IDHash, a2.IDHash} {
		if _, err := s.ConsoleSession(c, h, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after its actor's sessions were deleted: %v", h, err)
		}
	}
}
