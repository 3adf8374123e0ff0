package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestCatalogFailurePolicy: a model made over the admin API carries the failure policy of the
// config file's models: its fallbacks must name another model of the routing table, and serve
// at once; its degrade reply answers when nothing can. The records, on either store, hold the
// requested and the served model, and a degrade reply is recorded as degraded without a cost.
func TestCatalogFailurePolicy(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"embedded":         nil,
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			a := e.app
			_, raw := e.adminCall(a, http.MethodPost, "/admin/models",
				`{"name":"api-fb","deployments":[{"provider":"dead","model":"m"}],"fallbacks":["nope"]}`)
			if !strings.Contains(string(raw), `"param":"fallbacks"`) || !strings.Contains(string(raw), "nope") {
				t.Fatalf("a fallback naming no model: %s", raw)
			}
			var m struct {
				Fallbacks []string `json:"fallbacks"`
				Retry     struct {
					Retries int `json:"retries"`
				} `json:"retry"`
			}
			e.catalogCall(a, http.MethodPost, "/admin/models",
				`{"name":"api-fb","deployments":[{"provider":"dead","model":"m"}],"fallbacks":["gpt-test"],"retry":{"retries":1,"backoff":"10ms"}}`,
				http.StatusCreated, &m)
			if len(m.Fallbacks) != 1 || m.Fallbacks[0] != "gpt-test" || m.Retry.Retries != 1 {
				t.Fatalf("POST /admin/models answered %+v", m)
			}
			r := e.chatRecord(a, e.key, `{"model":"api-fb","messages":[{"role":"user","content":"hi"}]}`)
			if r.Status != http.StatusOK || r.Model != "api-fb" || r.ServedModel != "gpt-test" || r.UpstreamModel != "up-model" {
				t.Errorf("record: status %d, model %q served by %q (%q)", r.Status, r.Model, r.ServedModel, r.UpstreamModel)
			}

			e.catalogCall(a, http.MethodPatch, "/admin/models/api-fb", `{"fallbacks":null,"degrade":{"text":"sorry, later"}}`, http.StatusOK, nil)
			r = e.chatRecord(a, e.key, `{"model":"api-fb","messages":[{"role":"user","content":"hi"}]}`)
			if r.ErrorType != "degraded" || r.Status != http.StatusBadGateway || r.CostPicoUSD != nil || r.ServedModel != "api-fb" {
				t.Errorf("degraded record: status %d, error type %q, cost %v, served by %q", r.Status, r.ErrorType, r.CostPicoUSD, r.ServedModel)
			}
		})
	}
}
