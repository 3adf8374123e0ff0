package gateway

import (
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/llmgate/apikey"
	"github.com/llmgate/llmgate/store"
)

// newOptionsGateway is a gateway with opts over its own SQLite store (returned, so a test can
// take it away) and one valid key.
func newOptionsGateway(t *testing.T, opts Options) (*Gateway, string, store.Store) {
	g, key, st, _ := newGatewayOver(t, &fixtureProvider{}, opts)
	return g, key, st
}

// getWith sends GET path with a key through client and returns the status and Retry-After.
func getWith(t *testing.T, client *http.Client, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestUnknownKeyFloodIsBoundedPerAddress: a flood of distinct plausible keys from one address
// costs at most its lookup budget in store queries (the rest get 429 without one), pushes no valid
// key out of the cache, and leaves other addresses their own budget.
func TestUnknownKeyFloodIsBoundedPerAddress(t *testing.T) {
	const perMinute, flood = 20, 200
	g, key, _ := newOptionsGateway(t, Options{KeyLookupsPerAddress: perMinute, KeyCacheTTL: time.Minute, NegativeKeyCacheTTL: time.Minute})
	g.keys.maxItems = 50 // far fewer than the flood
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	url := srv.URL + "/v1/models"
	storeQueries := func() float64 { return testutil.ToFloat64(g.metrics.keyLookups.WithLabelValues("store")) }

	if st, _ := getWith(t, srv.Client(), url, key); st != 200 {
		t.Fatalf("valid key: HTTP %d", st)
	}
	before := storeQueries()
	start := time.Now()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 4 {
				st, ra := getWith(t, srv.Client(), url, apikey.Prefix+strings.Repeat("x", 30)+strings.Repeat("0", 10)+string(rune('A'+i%26))+string(rune('a'+i/26)))
				if st == http.StatusTooManyRequests && ra == "" {
					t.Error("429 without Retry-After")
				}
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	queried := storeQueries() - before
	// the burst, what refilled while the flood ran, and one for rounding
	bound := perMinute + math.Ceil(elapsed.Minutes()*perMinute) + 1
	t.Logf("%d distinct unknown keys in %v: statuses %v, %v store queries (bound %v)", flood, elapsed, statuses, queried, bound)
	if queried > bound {
		t.Errorf("the flood cost %v store queries, want at most %v", queried, bound)
	}
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != flood {
		t.Errorf("statuses %v: want only 401 and 429", statuses)
	}

	// the valid key is still cached: no store query for it
	before = storeQueries()
	if st, _ := getWith(t, srv.Client(), url, key); st != 200 {
		t.Errorf("valid key after the flood: HTTP %d", st)
	}
	if n := storeQueries() - before; n != 0 {
		t.Errorf("the valid key cost %v store queries after the flood: the flood pushed it out of the cache", n)
	}

	// another address has its own budget
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	if st, _ := getWith(t, other, url, apikey.Prefix+strings.Repeat("q", 43)); st != http.StatusUnauthorized {
		t.Errorf("an unknown key from another address: HTTP %d, want 401", st)
	}
}

// TestLookupBudget: an address spends its budget, gets a wait back when it is out, refills with
// time and gets refunds for valid keys; an IPv6 /64 is one address.
func TestLookupBudget(t *testing.T) {
	for remote, want := range map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"[::ffff:127.0.0.1]:5000":    "127.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::",
		"[2001:db8:1:2:ff::1]:80":    "2001:db8:1:2::",
		"[2001:db8:1:3::1]:80":       "2001:db8:1:3::",
		"not an address":             "not an address",
	} {
		if got := budgetAddress(remote); got != want {
			t.Errorf("budgetAddress(%q) = %q, want %q", remote, got, want)
		}
	}
	b := newLookupBudget(3)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if _, ok := b.take("[2001:db8::1]:1", now); !ok {
			t.Fatalf("lookup %d refused within the burst", i)
		}
	}
	wait, ok := b.take("[2001:db8::2]:2", now) // the same /64
	if ok || wait <= 0 || wait > 20*time.Second {
		t.Errorf("beyond the burst: ok %v, wait %v (want about 20s)", ok, wait)
	}
	if _, ok := b.take("127.0.0.1:1", now); !ok {
		t.Error("another address refused")
	}
	if _, ok := b.take("[2001:db8::1]:1", now.Add(20*time.Second)); !ok {
		t.Error("refused after a refill of one")
	}
	b.refund("[2001:db8::1]:1")
	if _, ok := b.take("[2001:db8::1]:1", now.Add(20*time.Second)); !ok {
		t.Error("a refunded lookup refused")
	}
	if newLookupBudget(-1) != nil {
		t.Error("a negative budget is not unbounded")
	}
	var none *lookupBudget
	if _, ok := none.take("x", now); !ok {
		t.Error("no budget refused a lookup")
	}
}
