package main

import (
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/store"
)

// A/B experiments end to end: an experiment on a public model is made, started, paused and
// stopped over the admin API; the requests it takes carry its id and their variant in their usage
// records and are served by the variant's model; the results endpoint agrees with the records.

// expChat sends one chat request with a key to a replica and returns the gateway's request id.
func (e *env) expChat(t *testing.T, a *app, key, model string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat %s: status %d", model, resp.StatusCode)
	}
	return resp.Header.Get("X-Request-Id")
}

// expBody is a valid experiment on gpt-test: half its users stay on it, half go to "other".
func expBody(id string) map[string]any {
	return map[string]any{"id": id, "model": "gpt-test", "description": "other vs gpt-test",
		"variants": []map[string]any{{"name": "control", "weight": 50}, {"name": "treatment", "model": "other", "weight": 50}}}
}

// TestExperimentsEndToEnd, on both stores: field-named 400s for bad bodies; a started experiment
// assigns every user one variant for good (each user's requests all carry the same variant and
// reach that variant's model), excluded keys and tenants stay out, and the results endpoint gives
// per variant what the records say; paused and stopped experiments take no traffic.
func TestExperimentsEndToEnd(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		adm := newAdmClient(t, e)
		for _, bad := range []struct {
			name  string
			body  map[string]any
			param string
		}{
			{"no model", map[string]any{"id": "x1", "variants": expBody("")["variants"]}, "model"},
			{"unknown model", map[string]any{"id": "x1", "model": "nope", "variants": expBody("")["variants"]}, "model"},
			{"bad id", map[string]any{"id": "a b", "model": "gpt-test", "variants": expBody("")["variants"]}, "id"},
			{"one variant", map[string]any{"id": "x1", "model": "gpt-test", "variants": []map[string]any{{"name": "a", "weight": 1}}}, "variants"},
			{"zero weight", map[string]any{"id": "x1", "model": "gpt-test", "variants": []map[string]any{{"name": "a", "weight": 1}, {"name": "b", "weight": 0}}}, "variants[1].weight"},
			{"same name", map[string]any{"id": "x1", "model": "gpt-test", "variants": []map[string]any{{"name": "a", "weight": 1}, {"name": "a", "model": "other", "weight": 1}}}, "variants[1].name"},
			{"unknown variant model", map[string]any{"id": "x1", "model": "gpt-test", "variants": []map[string]any{{"name": "a", "weight": 1}, {"name": "b", "model": "nope", "weight": 1}}}, "variants[1].model"},
			{"foreign deployment", map[string]any{"id": "x1", "model": "gpt-test", "variants": []map[string]any{{"name": "a", "weight": 1}, {"name": "b", "deployment": "up/other-model", "weight": 1}}}, "variants[1].deployment"},
			{"unknown field", map[string]any{"id": "x1", "model": "gpt-test", "variants": expBody("")["variants"], "split": 5}, "split"},
			{"weight type", map[string]any{"id": "x1", "model": "gpt-test", "variants": []map[string]any{{"name": "a", "weight": "1"}, {"name": "b", "weight": 1}}}, "variants.weight"},
		} {
			r := adm.Do("POST", "/admin/experiments", bad.body)
			if r.Status != http.StatusBadRequest || r.JSON("error.param").String() != bad.param {
				t.Errorf("%s: %d %s, want 400 naming %s", bad.name, r.Status, r.Body, bad.param)
			}
		}

		r := adm.Must(201, "POST", "/admin/experiments", expBody("exp-ab"))
		if r.JSON("state").String() != "draft" || r.JSON("salt").String() == "" || r.JSON("variants.0.model").String() != "gpt-test" {
			t.Fatalf("created: %s", r.Body)
		}
		adm.Must(409, "POST", "/admin/experiments", expBody("exp-ab"))
		// A draft takes no traffic.
		if rec := e.usageFor(e.expChat(t, e.app, e.key, "gpt-test")); rec.Experiment != "" {
			t.Errorf("a draft experiment's record: %+v", rec)
		}

		// Users with a key each; one more key kept out by id, one tenant kept out.
		var keys []keyJSON
		for i := range 12 {
			keys = append(keys, e.newKey(createKeyBody{Name: "exp", UserID: "exp-user-" + strconv.Itoa(i)}))
		}
		adm.Must(201, "POST", "/admin/tenants", map[string]any{"id": "exp-out", "name": "kept out"})
		kr := adm.Must(201, "POST", "/admin/keys", map[string]any{"name": "exp", "user_id": "exp-out-user", "tenant_id": "exp-out"})
		outTenant := keyJSON{ID: kr.JSON("id").String(), Key: kr.JSON("key").String()}
		outKey := e.newKey(createKeyBody{Name: "exp", UserID: "exp-user-out"})
		adm.Must(200, "PATCH", "/admin/experiments/exp-ab", map[string]any{"exclude_keys": []string{outKey.ID}, "exclude_tenants": []string{"exp-out"}})
		// Each variant is priced as its own public model (the upstream models have no price).
		adm.Must(200, "PUT", "/admin/pricing/gpt-test", map[string]any{"input_per_million": "1", "output_per_million": "1"})
		adm.Must(200, "PUT", "/admin/pricing/other", map[string]any{"input_per_million": "1000", "output_per_million": "1000"})
		perToken := map[string]int64{"control": 1_000_000, "treatment": 1_000_000_000} // pico-USD
		r = adm.Must(200, "POST", "/admin/experiments/exp-ab/start", nil)
		if r.JSON("state").String() != "running" {
			t.Fatalf("started: %s", r.Body)
		}
		adm.Must(409, "POST", "/admin/experiments/exp-ab/start", nil)
		for _, bad := range []struct {
			body        map[string]any
			status      int
			param, code string
		}{
			{map[string]any{"exclude_keys": []string{"a key"}}, 400, "exclude_keys[0]", "invalid_value"},
			{map[string]any{"description": "x\u0001"}, 400, "description", "invalid_value"},
			{map[string]any{"variants": []map[string]any{{"name": "a", "weight": 1}, {"name": "b", "weight": 2}}}, 409, "variants", "experiment_started"},
		} {
			r := adm.Do("PATCH", "/admin/experiments/exp-ab", bad.body)
			if r.Status != bad.status || r.JSON("error.param").String() != bad.param || r.JSON("error.code").String() != bad.code {
				t.Errorf("PATCH %v: %d %s, want %d %s naming %s", bad.body, r.Status, r.Body, bad.status, bad.code, bad.param)
			}
		}

		// Each user's requests: all of one variant, served by that variant's model.
		const perUser = 6
		upstream := map[string]string{"control": "up-model", "treatment": "other-model"}
		counts := map[string]int{}
		var ids, userVariant []string
		for i, k := range keys {
			seen := ""
			for range perUser {
				id := e.expChat(t, e.app, k.Key, "gpt-test")
				ids = append(ids, id)
				rec := e.usageFor(id)
				if rec.Experiment != "exp-ab" || upstream[rec.Variant] == "" || rec.UpstreamModel != upstream[rec.Variant] || rec.Model != "gpt-test" {
					t.Fatalf("user %d: record %+v", i, rec)
				}
				if rec.CostPicoUSD == nil || *rec.CostPicoUSD != (rec.PromptTokens+rec.CompletionTokens)*perToken[rec.Variant] {
					t.Fatalf("user %d: %s cost %v for %d tokens", i, rec.Variant, deref(rec.CostPicoUSD), rec.PromptTokens+rec.CompletionTokens)
				}
				if seen != "" && rec.Variant != seen {
					t.Fatalf("user %d moved from %s to %s", i, seen, rec.Variant)
				}
				seen = rec.Variant
			}
			counts[seen]++
			userVariant = append(userVariant, seen)
		}
		if counts["control"] == 0 || counts["treatment"] == 0 {
			t.Errorf("12 users all in one variant: %v", counts)
		}
		for _, k := range []keyJSON{outKey, outTenant} {
			if rec := e.usageFor(e.expChat(t, e.app, k.Key, "gpt-test")); rec.Experiment != "" || rec.UpstreamModel != "up-model" {
				t.Errorf("excluded key %s: record %+v", k.ID, rec)
			}
		}
		// Another model's traffic is not in it.
		if rec := e.usageFor(e.expChat(t, e.app, keys[0].Key, "slow")); rec.Experiment != "" {
			t.Errorf("another model's record: %+v", rec)
		}

		// One user, 1,000 requests (8 at a time): every one in the user's variant.
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 8 {
			wg.Go(func() {
				for range 125 {
					if e.chatStatus(e.app, keys[1].Key, "gpt-test") != http.StatusOK {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d of the 1,000 requests failed", failed.Load())
		}
		want := userVariant[1]
		n := 0
		for _, rec := range e.allUsage(int64(len(ids) + 1000)) {
			if rec.KeyID == keys[1].ID {
				if n++; rec.Experiment != "exp-ab" || rec.Variant != want {
					t.Fatalf("a request of user 1 (variant %s): record %+v", want, rec)
				}
			}
		}
		if n != perUser+1000 {
			t.Fatalf("user 1 has %d records, want %d", n, perUser+1000)
		}

		// The results agree with the records.
		recs := e.allUsage(int64(len(ids) + 1000))
		byVariant := map[string][]store.UsageRecord{}
		for _, rec := range recs {
			if rec.Experiment == "exp-ab" {
				byVariant[rec.Variant] = append(byVariant[rec.Variant], rec)
			}
		}
		res := adm.Must(200, "GET", "/admin/experiments/exp-ab/results", nil)
		if res.JSON("experiment").String() != "exp-ab" || len(res.JSON("variants").Array()) != 2 {
			t.Fatalf("results: %s", res.Body)
		}
		for _, v := range []string{"control", "treatment"} {
			checkVariantResults(t, res, v, byVariant[v])
		}

		// The metric series by experiment and variant count the same requests.
		metrics := adm.Must(200, "GET", "/metrics", nil).Body
		for _, v := range []string{"control", "treatment"} {
			want := `llmgate_experiment_requests_total{experiment="exp-ab",status="200",variant="` + v + `"} ` + strconv.Itoa(len(byVariant[v]))
			if !strings.Contains(metrics, want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}

		// Paused: no assignment; started again: the same users get the same variants.
		adm.Must(200, "POST", "/admin/experiments/exp-ab/pause", nil)
		if rec := e.usageFor(e.expChat(t, e.app, keys[0].Key, "gpt-test")); rec.Experiment != "" || rec.UpstreamModel != "up-model" {
			t.Errorf("paused experiment's record: %+v", rec)
		}
		adm.Must(200, "POST", "/admin/experiments/exp-ab/start", nil)
		if rec := e.usageFor(e.expChat(t, e.app, keys[0].Key, "gpt-test")); rec.Variant != userVariant[0] {
			t.Errorf("after a pause user 0 is in %q, was in %q", rec.Variant, userVariant[0])
		}
		// Another experiment on the same model may not run beside it.
		adm.Must(201, "POST", "/admin/experiments", expBody("exp-2"))
		if r := adm.Do("POST", "/admin/experiments/exp-2/start", nil); r.Status != http.StatusConflict || r.JSON("error.code").String() != "experiment_running" {
			t.Errorf("second running experiment on gpt-test: %d %s", r.Status, r.Body)
		}
		adm.Must(200, "POST", "/admin/experiments/exp-ab/stop", nil)
		if rec := e.usageFor(e.expChat(t, e.app, keys[0].Key, "gpt-test")); rec.Experiment != "" {
			t.Errorf("stopped experiment's record: %+v", rec)
		}
		adm.Must(409, "POST", "/admin/experiments/exp-ab/start", nil)

		// Variants narrowed to one deployment: each request goes to its variant's deployment alone
		// (failover's first deployment, which refuses connections, is never tried).
		adm.Must(201, "POST", "/admin/experiments", map[string]any{"id": "exp-dep", "model": "gpt-test", "variants": []map[string]any{
			{"name": "a", "deployment": "up/up-model", "weight": 1}, {"name": "b", "model": "failover", "deployment": "up/fallback-model", "weight": 1}}})
		adm.Must(200, "POST", "/admin/experiments/exp-dep/start", nil)
		deployment := map[string]string{"a": "up/up-model", "b": "up/fallback-model"}
		for i, k := range keys {
			if rec := e.usageFor(e.expChat(t, e.app, k.Key, "gpt-test")); rec.Experiment != "exp-dep" || rec.Deployment != deployment[rec.Variant] {
				t.Errorf("user %d in exp-dep: record %+v", i, rec)
			}
		}
		if m := adm.Must(200, "GET", "/metrics", nil).Body; strings.Contains(m, `llmgate_upstream_attempts_total{deployment="dead/m"`) {
			t.Errorf("failover's first deployment was tried for a variant narrowed to its second")
		}
		adm.Must(200, "POST", "/admin/experiments/exp-dep/stop", nil)
		if r := adm.Must(200, "GET", "/admin/experiments", nil); !slices.Contains(r.IDs(), "exp-ab") || !slices.Contains(r.IDs(), "exp-2") {
			t.Errorf("list: %s", r.Body)
		}
		if r := adm.Must(200, "GET", "/admin/experiments/exp-ab", nil); r.JSON("state").String() != "stopped" {
			t.Errorf("get: %s", r.Body)
		}
		log := adm.Must(200, "GET", "/admin/audit-log?action=experiment.stop", nil)
		if log.JSON("data.0.before.state").String() != "running" || log.JSON("data.0.after.state").String() != "stopped" {
			t.Errorf("audit log of the stop: %s", log.Body)
		}
	})
}

// checkVariantResults compares one variant's results with the records it was computed from.
func checkVariantResults(t *testing.T, res admintest.Resp, variant string, recs []store.UsageRecord) {
	t.Helper()
	v := res.JSON(`variants.#(variant=="` + variant + `")`)
	if !v.Exists() {
		t.Fatalf("no results for %s: %s", variant, res.Body)
	}
	var lat []int64
	var prompt, completion, cost int64
	for _, r := range recs {
		lat = append(lat, r.LatencyMS)
		prompt += r.PromptTokens
		completion += r.CompletionTokens
		cost += *r.CostPicoUSD
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	n := int64(len(recs))
	rank := func(p float64) int64 { return lat[int(math.Ceil(p*float64(n)))-1] }
	if v.Get("requests").Int() != n || v.Get("errors").Int() != 0 || v.Get("error_rate").Float() != 0 ||
		v.Get("latency_ms.samples").Int() != n || v.Get("latency_ms.p50").Int() != rank(0.5) || v.Get("latency_ms.p95").Int() != rank(0.95) ||
		v.Get("prompt_tokens").Int() != prompt || v.Get("completion_tokens").Int() != completion ||
		math.Abs(v.Get("tokens_per_request").Float()-float64(prompt+completion)/float64(n)) > 1e-9 ||
		v.Get("cost_samples").Int() != n || v.Get("cost_usd").String() != billing.FormatPico64(cost) ||
		v.Get("cost_usd_per_request").String() != billing.FormatPico64(cost/n) {
		t.Errorf("%s: results %s, records: n=%d latency %v prompt %d completion %d cost %d", variant, v.Raw, n, lat, prompt, completion, cost)
	}
}

// TestExperimentPauseReachesReplica: PostgreSQL + Redis, two replicas: an experiment started on
// one assigns on the other, and its pause and stop take effect there without a restart.
func TestExperimentPauseReachesReplica(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)))
	other := e.replica(nil)
	adm := newAdmClient(t, e)
	key := e.newKey(createKeyBody{Name: "exp", UserID: "replica-user"})
	body := expBody("exp-rep")
	body["variants"] = []map[string]any{{"name": "only-other", "model": "other", "weight": 1}, {"name": "rare", "weight": 1}}
	// The user is assigned by hash: find the variant it gets from the first request on the first replica.
	adm.Must(201, "POST", "/admin/experiments", body)
	adm.Must(200, "POST", "/admin/experiments/exp-rep/start", nil)
	waitFor(t, 5*time.Second, "the other replica to assign", func() bool {
		return e.usageFor(e.expChat(t, other, key.Key, "gpt-test")).Experiment == "exp-rep"
	})
	adm.Must(200, "POST", "/admin/experiments/exp-rep/pause", nil)
	waitFor(t, 5*time.Second, "the other replica to stop assigning after the pause", func() bool {
		return e.usageFor(e.expChat(t, other, key.Key, "gpt-test")).Experiment == ""
	})
	adm.Must(200, "POST", "/admin/experiments/exp-rep/start", nil)
	waitFor(t, 5*time.Second, "the other replica to assign again", func() bool {
		return e.usageFor(e.expChat(t, other, key.Key, "gpt-test")).Experiment == "exp-rep"
	})
	adm.Must(200, "POST", "/admin/experiments/exp-rep/stop", nil)
	waitFor(t, 5*time.Second, "the other replica to stop assigning after the stop", func() bool {
		return e.usageFor(e.expChat(t, other, key.Key, "gpt-test")).Experiment == ""
	})
}

// deref shows a record's cost (nil: unpriced).
func deref(p *int64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// TestCLIExperiments: llmgate experiments create, start, list, results, pause, update and stop
// through the admin API; a bad body's message names the field.
func TestCLIExperiments(t *testing.T) {
	e := newEnv(t)
	cliAgainst(t, e)
	out := cliOK(t, "experiments", "create", "cli-exp", "--model", "gpt-test", "--description", "cli",
		"--variants", `[{"name":"control","weight":1},{"name":"treatment","model":"other","weight":1}]`, "--exclude-keys", "k1,k2")
	if field(t, out, "state") != "draft" || field(t, out, "model") != "gpt-test" {
		t.Errorf("experiments create printed:\n%s", out)
	}
	if out = cliOK(t, "experiments", "start", "cli-exp"); field(t, out, "state") != "running" {
		t.Errorf("experiments start printed:\n%s", out)
	}
	if out = cliOK(t, "experiments", "list"); !row(out, `cli-exp +gpt-test +running `) {
		t.Errorf("experiments list printed:\n%s", out)
	}
	rec := e.usageFor(e.expChat(t, e.app, e.key, "gpt-test"))
	if out = cliOK(t, "experiments", "results", "cli-exp"); !row(out, rec.Variant+` +[a-z-]+ +1 +0 `) {
		t.Errorf("experiments results printed (the request went to %s):\n%s", rec.Variant, out)
	}
	cliOK(t, "experiments", "pause", "cli-exp")
	if out = cliOK(t, "experiments", "update", "cli-exp", "--exclude-tenants", "t1"); field(t, out, "state") != "paused" {
		t.Errorf("experiments update printed:\n%s", out)
	}
	if out = cliOK(t, "experiments", "stop", "cli-exp"); field(t, out, "state") != "stopped" {
		t.Errorf("experiments stop printed:\n%s", out)
	}
	if msg := cliFails(t, "experiments", "create", "bad", "--model", "gpt-test", "--variants", `[{"name":"a","weight":1}]`); !strings.Contains(msg, "variants: want 2 to 10") {
		t.Errorf("experiments create with one variant: %s", msg)
	}
}
