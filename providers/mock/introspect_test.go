package mock

import (
	"net/http"
	"strconv"
	"testing"
)

func TestIntrospection(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 2})
	for i := range 3 {
		post(t, srv, "/v1/chat/completions",
			`{"model":"m`+strconv.Itoa(i)+`","messages":[]}`, "Authorization", "Bearer sk-"+strconv.Itoa(i))
	}
	post(t, srv, "/v1/chat/completions", `{"model":"m","messages":[],"mock":{"status":429}}`)

	_, body := do(t, srv, mustRequest(t, http.MethodGet, srv.URL+"/_mock/stats"))
	if got, want := decode[Stats](t, body), (Stats{Requests: 4, Completed: 3, Errors: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}

	_, body = do(t, srv, mustRequest(t, http.MethodGet, srv.URL+"/_mock/requests?n=2"))
	reqs := decode[[]RecordedRequest](t, body)
	if len(reqs) != 2 {
		t.Fatalf("%d requests: %s", len(reqs), body)
	}
	if r := reqs[0]; r.Path != "/v1/chat/completions" || r.Body != `{"model":"m2","messages":[]}` ||
		r.Headers["Authorization"] != "Bearer sk-2" || r.Headers["Content-Type"] != "application/json" {
		t.Errorf("older request %+v", r)
	}
	if r := reqs[1]; r.Body != `{"model":"m","messages":[],"mock":{"status":429}}` {
		t.Errorf("newest request %+v", r)
	}

	if resp, _ := do(t, srv, mustRequest(t, http.MethodGet, srv.URL+"/_mock/requests?n=x")); resp.StatusCode != 400 {
		t.Errorf("n=x: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, mustRequest(t, http.MethodGet, srv.URL+"/_mock/reset")); resp.StatusCode != 405 {
		t.Errorf("GET reset: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, mustRequest(t, http.MethodPost, srv.URL+"/_mock/reset")); resp.StatusCode != 204 {
		t.Errorf("reset: %d", resp.StatusCode)
	}
	if s := h.Stats(); s != (Stats{}) {
		t.Errorf("stats after reset %+v", s)
	}
	if _, body = do(t, srv, mustRequest(t, http.MethodGet, srv.URL+"/_mock/requests")); body != "[]" {
		t.Errorf("requests after reset %s", body)
	}
}

func TestRequestRing(t *testing.T) {
	h := NewHandler(Options{})
	for i := range maxRecorded + 5 {
		h.log.record("/v1/embeddings", nil, []byte(strconv.Itoa(i)))
	}
	all := h.Requests(1000)
	if len(all) != maxRecorded || all[0].Body != "5" || all[maxRecorded-1].Body != strconv.Itoa(maxRecorded+4) {
		t.Errorf("ring holds %d, from %q to %q", len(all), all[0].Body, all[len(all)-1].Body)
	}
	if last := h.Requests(1); len(last) != 1 || last[0].Body != strconv.Itoa(maxRecorded+4) {
		t.Errorf("last request %+v", last)
	}
}
