package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/llmgate/apikey"
)

// TestBadKeyFloodHitsStoreOnce: concurrent and repeated requests with one unknown key cost one
// store query (singleflight, then the negative cache); strings that cannot be keys cost none.
func TestBadKeyFloodHitsStoreOnce(t *testing.T) {
	g, _, _ := newTestGateway(t, &fixtureProvider{})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	send := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bad := apikey.Prefix + strings.Repeat("Z", apikey.BodyLen)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := send(bad); s != 401 {
				t.Errorf("status %d", s)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 50; i++ {
		send("not a key; DROP TABLE api_keys")
	}
	lookups := g.metrics.keyLookups
	if n := testutil.ToFloat64(lookups.WithLabelValues("store")); n != 1 {
		t.Errorf("store queried %v times for one bad key, want 1", n)
	}
	if n := testutil.ToFloat64(lookups.WithLabelValues("rejected")); n != 50 {
		t.Errorf("%v implausible keys rejected before lookup, want 50", n)
	}
}

// TestCachedKeyResolvesWithoutAllocating: a key the cache knows is checked on every request, so
// its lookup hashes into a stack buffer instead of building the hash's string.
func TestCachedKeyResolvesWithoutAllocating(t *testing.T) {
	g, key, _ := newTestGateway(t, &fixtureProvider{})
	ctx := context.Background()
	if _, err := g.keys.resolve(ctx, key, "127.0.0.1:1"); err != nil { // now cached
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := g.keys.resolve(ctx, key, "127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("resolving a cached key: %.0f allocations, want 0", allocs)
	}
}

// TestLateFlightTakesStoredAnswer: a request that read the cache just before the first lookup of a
// key stored its answer, and reached singleflight just after that lookup ended, starts a flight of
// its own; that flight takes the stored answer instead of querying the store again.
func TestLateFlightTakesStoredAnswer(t *testing.T) {
	g, key, _ := newTestGateway(t, &fixtureProvider{})
	ctx := context.Background()
	store := g.metrics.keyLookups.WithLabelValues("store")
	for _, k := range []string{apikey.Prefix + strings.Repeat("Z", apikey.BodyLen), key} {
		if _, err := g.keys.resolve(ctx, k, "127.0.0.1:1"); err != nil && k == key {
			t.Fatal(err)
		}
		before := testutil.ToFloat64(store)
		id, err := g.keys.lookup(ctx, apikey.Hash(k)) // what the late request's flight runs
		if err != nil {
			t.Fatal(err)
		}
		if n := testutil.ToFloat64(store) - before; n != 0 {
			t.Errorf("key %.8s…: a flight after the stored answer queried the store %v times, want 0", k, n)
		}
		if (id != nil) != (k == key) {
			t.Errorf("key %.8s…: identity %v from the stored answer", k, id)
		}
	}
}
