package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// testResponseRoutes: a route reads back as written (to the microsecond) until it expires;
// a put replaces it; delete and purge remove it, and ErrNotFound tells a missing one.
func testResponseRoutes(t *testing.T, s store.Store) {
	c := ctx(t)
	now := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	r := store.ResponseRoute{ResponseID: "resp_1'\"%_", TenantID: "t1", KeyID: "k1", Model: "gpt", DeploymentID: "dep-a",
		Provider: "openai", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.PutResponseRoute(c, r); err != nil {
		t.Fatalf("PutResponseRoute: %v", err)
	}
	got, err := s.ResponseRoute(c, r.ResponseID, now)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("ResponseRoute = %+v, %v; want %+v", got, err, r)
	}
	if _, err := s.ResponseRoute(c, r.ResponseID, r.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResponseRoute at its expiry: %v, want ErrNotFound", err)
	}
	if _, err := s.ResponseRoute(c, "resp_other", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ResponseRoute of an unknown id: %v, want ErrNotFound", err)
	}
	r.DeploymentID, r.TenantID = "dep-b", "t2"
	if err := s.PutResponseRoute(c, r); err != nil {
		t.Fatalf("PutResponseRoute again: %v", err)
	}
	if got, err := s.ResponseRoute(c, r.ResponseID, now); err != nil || got.DeploymentID != "dep-b" || got.TenantID != "t2" {
		t.Errorf("after a second put: %+v, %v; want it replaced", got, err)
	}
	if err := s.DeleteResponseRoute(c, r.ResponseID); err != nil {
		t.Fatalf("DeleteResponseRoute: %v", err)
	}
	if err := s.DeleteResponseRoute(c, r.ResponseID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteResponseRoute twice: %v, want ErrNotFound", err)
	}
	// A translated response keeps its conversation and Response with the route; a passthrough
	// one reads back with neither.
	kept := r
	kept.ResponseID, kept.History, kept.Response = "resp_kept", []byte(`[{"type":"message","role":"user","content":"hé"}]`), []byte(`{"id":"resp_kept","object":"response"}`)
	if err := s.PutResponseRoute(c, kept); err != nil {
		t.Fatalf("PutResponseRoute with a conversation: %v", err)
	}
	if got, err := s.ResponseRoute(c, kept.ResponseID, now); err != nil || !reflect.DeepEqual(got, kept) || !got.Translated() {
		t.Errorf("ResponseRoute with a conversation = %+v, %v; want %+v", got, err, kept)
	}
	if err := s.PutResponseRoute(c, r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ResponseRoute(c, r.ResponseID, now); err != nil || got.History != nil || got.Response != nil || got.Translated() {
		t.Errorf("a passthrough route reads back as %+v, %v: want no history, no response", got, err)
	}
	old := r
	old.ResponseID, old.ExpiresAt = "resp_old", now.Add(-time.Minute)
	live := r
	live.ResponseID = "resp_live"
	for _, x := range []store.ResponseRoute{old, live} {
		if err := s.PutResponseRoute(c, x); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PurgeResponseRoutes(c, now); err != nil || n != 1 {
		t.Errorf("PurgeResponseRoutes = %d, %v; want 1", n, err)
	}
	if _, err := s.ResponseRoute(c, "resp_live", now); err != nil {
		t.Errorf("the live route after the purge: %v", err)
	}
}

// testResponseRoutesBatch: PutResponseRoutes writes every route of a batch, each readable as if
// put alone; an id twice in one batch ends as its last route; an empty batch writes nothing.
func testResponseRoutesBatch(t *testing.T, s store.Store) {
	c := ctx(t)
	now := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	if err := s.PutResponseRoutes(c, nil); err != nil {
		t.Fatalf("PutResponseRoutes of nothing: %v", err)
	}
	var batch []store.ResponseRoute
	for i, id := range []string{"resp_b1", "resp_b2", "resp_b3", "resp_b2"} {
		batch = append(batch, store.ResponseRoute{ResponseID: id, TenantID: "t1", KeyID: "k1", Model: "gpt",
			DeploymentID: "dep-" + string(rune('a'+i)), Provider: "openai", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	batch[2].History, batch[2].Response = []byte(`[{"type":"message","role":"user","content":"x"}]`), []byte(`{"id":"resp_b3"}`)
	if err := s.PutResponseRoutes(c, batch); err != nil {
		t.Fatalf("PutResponseRoutes: %v", err)
	}
	for _, want := range []store.ResponseRoute{batch[0], batch[2], batch[3]} {
		if got, err := s.ResponseRoute(c, want.ResponseID, now); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ResponseRoute(%s) after the batch = %+v, %v; want %+v", want.ResponseID, got, err, want)
		}
	}
}
