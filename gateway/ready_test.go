package gateway

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReadyWhileTheStoreIsDown: without its store, a gateway that knows valid keys still serves
// them and is ready (200, degraded, store down); one that knows none can serve nobody and is not
// ready (503).
func TestReadyWhileTheStoreIsDown(t *testing.T) {
	ready := func(srv *httptest.Server) (int, string) {
		resp, err := srv.Client().Get(srv.URL + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	g, key, st := newOptionsGateway(t, Options{KeyCacheTTL: 50 * time.Millisecond})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	if code, _ := getWith(t, srv.Client(), srv.URL+"/v1/models", key); code != 200 {
		t.Fatalf("valid key: HTTP %d", code)
	}
	st.Close()
	time.Sleep(100 * time.Millisecond) // past the key's TTL: it is served stale
	if code, _ := getWith(t, srv.Client(), srv.URL+"/v1/models", key); code != 200 {
		t.Errorf("valid key with the store down: HTTP %d", code)
	}
	if code, body := ready(srv); code != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, `"store":"down"`) {
		t.Errorf("ready with the store down and a key known: %d %s, want 200 degraded, store down", code, body)
	}

	g2, _, st2 := newOptionsGateway(t, Options{})
	srv2 := httptest.NewServer(g2.Handler())
	defer srv2.Close()
	st2.Close()
	if code, body := ready(srv2); code != 503 || !strings.Contains(body, `"store":"down"`) {
		t.Errorf("ready with the store down and no key known: %d %s, want 503", code, body)
	}
}
