package storetest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// testCatalog: catalog entries round-trip (the spec as the same JSON value, the sealed secret as
// written), list providers first then models by name, conflict on a second create, update only
// what may change, and delete.
func testCatalog(t *testing.T, s store.Store) {
	c := ctx(t)
	if got, err := s.CatalogEntries(c); err != nil || len(got) != 0 {
		t.Fatalf("CatalogEntries() on an empty store = %+v, %v", got, err)
	}
	at := mins(0)
	entries := []store.CatalogEntry{
		{Kind: store.CatalogModel, Name: "gpt-x", Spec: []byte(`{"deployments":[{"provider":"p1","model":"x"}]}`), CreatedAt: at, UpdatedBy: "bootstrap", UpdatedAt: at},
		{Kind: store.CatalogProvider, Name: "zeta", Spec: []byte(`{"type":"openai","base_url":"https://z.example"}`), Secret: "v1:abcd1234:c2VhbGVk", CreatedAt: at, UpdatedBy: "tok1", UpdatedAt: at},
		{Kind: store.CatalogProvider, Name: "Alpha", Spec: []byte(`{"type":"mock"}`), CreatedAt: at, UpdatedAt: at},
		{Kind: store.CatalogModel, Name: "a/b'; --", Spec: []byte(`{"deployments":[]}`), CreatedAt: at, UpdatedAt: at},
	}
	for _, e := range entries {
		if err := s.CreateCatalogEntry(c, e); err != nil {
			t.Fatalf("CreateCatalogEntry(%s %s): %v", e.Kind, e.Name, err)
		}
	}
	if err := s.CreateCatalogEntry(c, entries[1]); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateCatalogEntry(zeta): err = %v, want ErrConflict", err)
	}
	// The same name as another kind is no conflict.
	same := store.CatalogEntry{Kind: store.CatalogModel, Name: "zeta", Spec: []byte(`{}`), CreatedAt: at, UpdatedAt: at}
	if err := s.CreateCatalogEntry(c, same); err != nil {
		t.Errorf("CreateCatalogEntry(model zeta beside provider zeta): %v", err)
	}
	for _, bad := range []store.CatalogEntry{{Kind: "route", Name: "x", Spec: []byte(`{}`)}, {Kind: store.CatalogModel, Spec: []byte(`{}`)},
		{Kind: store.CatalogModel, Name: "y", Spec: []byte(`[1]`)}, {Kind: store.CatalogModel, Name: "y", Spec: []byte(`not json`)}} {
		if err := s.CreateCatalogEntry(c, bad); err == nil {
			t.Errorf("CreateCatalogEntry(%+v): no error", bad)
		}
	}
	got, err := s.CatalogEntries(c)
	if err != nil {
		t.Fatalf("CatalogEntries: %v", err)
	}
	want := []store.CatalogEntry{entries[2], entries[1], entries[3], entries[0], same}
	assertCatalog(t, got, want)

	upd := entries[1]
	upd.Spec, upd.Secret, upd.UpdatedBy, upd.UpdatedAt = []byte(`{"type":"deepseek"}`), "", "tok2", mins(5)
	upd.CreatedAt = mins(9) // not written: creation stays
	if err := s.UpdateCatalogEntry(c, upd); err != nil {
		t.Fatalf("UpdateCatalogEntry: %v", err)
	}
	upd.CreatedAt = at
	got, _ = s.CatalogEntries(c)
	assertCatalog(t, got[1:2], []store.CatalogEntry{upd})
	ghost := store.CatalogEntry{Kind: store.CatalogProvider, Name: "ghost", Spec: []byte(`{}`)}
	if err := s.UpdateCatalogEntry(c, ghost); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateCatalogEntry(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteCatalogEntry(c, store.CatalogProvider, "zeta"); err != nil {
		t.Fatalf("DeleteCatalogEntry: %v", err)
	}
	if err := s.DeleteCatalogEntry(c, store.CatalogProvider, "zeta"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteCatalogEntry: err = %v, want ErrNotFound", err)
	}
	got, _ = s.CatalogEntries(c)
	assertCatalog(t, got, []store.CatalogEntry{entries[2], entries[3], entries[0], same})
}

func assertCatalog(t *testing.T, got, want []store.CatalogEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("catalog = %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		var gs, ws any
		if err := json.Unmarshal(g.Spec, &gs); err != nil {
			t.Errorf("entry %d spec %q: %v", i, g.Spec, err)
		}
		_ = json.Unmarshal(w.Spec, &ws)
		if g.Kind != w.Kind || g.Name != w.Name || g.Secret != w.Secret || g.UpdatedBy != w.UpdatedBy ||
			!g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) || !reflect.DeepEqual(gs, ws) ||
			g.CreatedAt.Location() != time.UTC {
			t.Errorf("entry %d = %+v (spec %s), want %+v (spec %s)", i, g, g.Spec, w, w.Spec)
		}
	}
}
