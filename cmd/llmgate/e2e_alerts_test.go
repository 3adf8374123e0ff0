package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// adminRaw sends a body to the admin API of replica a and returns the status and the raw answer.
func (e *env) adminRaw(a *app, method, path, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, a.adminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// webhookReceiver is a test endpoint on loopback: it checks each delivery's signature, answers
// the first one 500, and keeps the payloads of those it accepted.
type webhookReceiver struct {
	srv    *httptest.Server
	secret atomic.Value // string, known once the webhook is made

	mu       sync.Mutex
	calls    int
	accepted map[string]int // event id → deliveries accepted
	payloads []map[string]any
	problems []string
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{accepted: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	secret, _ := r.secret.Load().(string)
	if err := verifySignature(secret, req.Header.Get("X-Llmgate-Signature"), body); err != nil {
		r.problems = append(r.problems, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.calls == 1 { // the first delivery fails: it must be retried
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		r.problems = append(r.problems, "payload: "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id, _ := p["id"].(string)
	r.accepted[id]++
	r.payloads = append(r.payloads, p)
	w.WriteHeader(http.StatusNoContent)
}

// verifySignature checks X-Llmgate-Signature (t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">),
// the way a receiver is told to in docs/operations.md.
func verifySignature(secret, header string, body []byte) error {
	if secret == "" {
		return fmt.Errorf("delivery before the secret was known")
	}
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("signature header %q: no recent timestamp", header)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return fmt.Errorf("signature header %q does not sign the body", header)
	}
	return nil
}

// TestBudgetAlertsReachWebhook: a key's daily budget driven past 80, 90 and 100 % by real
// requests through two replicas sharing one PostgreSQL emits exactly three events, each once,
// each delivered once to a webhook on loopback with a valid signature; the receiver's first
// answer (500) is retried and then delivered; events and deliveries are listed over the API and
// counted in the metric, and the second replica duplicates nothing.
func TestBudgetAlertsReachWebhook(t *testing.T) {
	e := newEnv(t, withPostgres(t), withSecretKey(testSecretKey))
	other := e.replica(nil)
	recv := newWebhookReceiver(t)

	var hook struct {
		ID     string `json:"id"`
		URL    string `json:"url"`
		Secret string `json:"secret"`
	}
	status, raw := e.adminRaw(e.app, http.MethodPost, "/admin/alerts/webhooks", `{"name":"ops","url":"`+recv.srv.URL+`/hook"}`)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", status, raw)
	}
	if err := json.Unmarshal(raw, &hook); err != nil || hook.Secret == "" || hook.ID == "" {
		t.Fatalf("create webhook answered %s (%v): want an id and the secret", raw, err)
	}
	recv.secret.Store(hook.Secret)
	// The secret is shown once: never again.
	for _, path := range []string{"/admin/alerts/webhooks/" + hook.ID, "/admin/alerts/webhooks"} {
		if status, raw := e.adminRaw(other, http.MethodGet, path, ""); status != 200 || strings.Contains(string(raw), hook.Secret) {
			t.Errorf("GET %s: %d, secret shown: %v", path, status, strings.Contains(string(raw), hook.Secret))
		}
	}

	e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)
	k := e.newKey(createKeyBody{Name: "alerted"})
	// 300 µUSD a day at 25 µUSD a request: 80 % is crossed by the 10th request (250), 90 % by the
	// 11th (275), 100 % by the 12th (300), one crossing per request.
	e.putPolicy("/admin/quota/policies/key/"+k.ID, `{"budget_usd_per_day":"0.0003"}`)
	waitPolicy(t, "key", k.ID, e.app, other)
	waitFor(t, 5*time.Second, "the price on both replicas", func() bool {
		for _, r := range []*app{e.app, other} {
			if _, ok := r.gateway.Prices().Lookup("up-model"); !ok {
				return false
			}
		}
		return true
	})
	for i := range 12 {
		r := []*app{e.app, other}[i%2]
		if status, typ, _ := e.sendMoney(r, k.Key); status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, status, typ)
		}
		// The ledger must hold each request before the next one, so that each crossing is its
		// own request's.
		e.waitRecords(k.ID, i+1)
	}

	waitFor(t, 30*time.Second, "three events delivered", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return len(recv.accepted) >= 3
	})
	time.Sleep(1500 * time.Millisecond) // room for a duplicate to show up, were there one
	recv.mu.Lock()
	if len(recv.problems) > 0 {
		t.Errorf("receiver problems: %v", recv.problems)
	}
	if len(recv.accepted) != 3 || recv.calls != 4 {
		t.Errorf("receiver accepted %v in %d calls; want 3 events once each in 4 calls (one 500 retried)", recv.accepted, recv.calls)
	}
	for id, n := range recv.accepted {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	thresholds := map[float64]bool{}
	for _, p := range recv.payloads {
		thresholds[p["threshold_percent"].(float64)] = true
		if p["kind"] != "budget_day" || p["subject_type"] != "key" || p["subject_id"] != k.ID || p["tenant_id"] != "default" ||
			p["limit"] != "0.0003" || p["unit"] != "usd" {
			t.Errorf("payload %v", p)
		}
		if lvl := p["level"]; (p["threshold_percent"] == 100.0) != (lvl == "reached") {
			t.Errorf("threshold %v has level %v", p["threshold_percent"], lvl)
		}
	}
	recv.mu.Unlock()
	if !thresholds[80] || !thresholds[90] || !thresholds[100] {
		t.Errorf("thresholds delivered %v, want 80, 90 and 100", thresholds)
	}

	// The events over the API, from either replica.
	var events struct {
		Data []struct {
			ID        string `json:"id"`
			Kind      string `json:"kind"`
			Threshold int    `json:"threshold_percent"`
			Used      string `json:"used"`
			Period    string `json:"period"`
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	status, raw = e.adminRaw(other, http.MethodGet, "/admin/alerts/events?subject_type=key&subject_id="+k.ID+"&kind=budget_day", "")
	if status != 200 || json.Unmarshal(raw, &events) != nil || len(events.Data) != 3 {
		t.Fatalf("events: %d %s", status, raw)
	}
	for _, ev := range events.Data {
		// The spend when the crossing was seen: the crossing request's, or a later one's when the
		// next batch was written before the check ran.
		used, err := strconv.ParseFloat(ev.Used, 64)
		if err != nil || used < 0.0003*float64(ev.Threshold)/100-1e-12 || used > 0.0003+1e-12 ||
			ev.Period != time.Now().UTC().Format("2006-01-02") {
			t.Errorf("event %+v: want the spend that crossed the threshold, in today's period", ev)
		}
	}
	status, raw = e.adminRaw(e.app, http.MethodGet, "/admin/alerts/events?subject_id="+k.ID+"&limit=2", "")
	if status != 200 || json.Unmarshal(raw, &events) != nil || len(events.Data) != 2 || !events.HasMore {
		t.Errorf("paged events: %d %s", status, raw)
	}

	// The deliveries: four attempts in all, the first a 500 with a retry planned.
	var deliveries struct {
		Data []struct {
			EventID  string `json:"event_id"`
			State    string `json:"state"`
			Attempts []struct {
				Attempt     int        `json:"attempt"`
				StatusCode  int        `json:"status_code"`
				Error       string     `json:"error"`
				NextRetryAt *time.Time `json:"next_retry_at"`
			} `json:"attempts"`
		} `json:"data"`
	}
	status, raw = e.adminRaw(other, http.MethodGet, "/admin/alerts/deliveries?webhook_id="+hook.ID, "")
	if status != 200 || json.Unmarshal(raw, &deliveries) != nil || len(deliveries.Data) != 3 {
		t.Fatalf("deliveries: %d %s", status, raw)
	}
	attempts, retried := 0, 0
	for _, d := range deliveries.Data {
		if d.State != "delivered" {
			t.Errorf("delivery of %s is %s", d.EventID, d.State)
		}
		attempts += len(d.Attempts)
		if len(d.Attempts) == 2 {
			retried++
			if a := d.Attempts[0]; a.Attempt != 1 || a.StatusCode != 500 || a.Error == "" || a.NextRetryAt == nil {
				t.Errorf("first attempt %+v: want 500 with its error and the next retry", a)
			}
			if a := d.Attempts[1]; a.Attempt != 2 || a.StatusCode != 204 || a.NextRetryAt != nil {
				t.Errorf("second attempt %+v: want 204 and no retry", a)
			}
		}
	}
	if attempts != 4 || retried != 1 {
		t.Errorf("%d attempts, %d deliveries retried: want 4 and 1 (%s)", attempts, retried, raw)
	}

	// Each crossing counted once over both replicas.
	counted := map[string]float64{}
	for _, r := range []*app{e.app, other} {
		resp, err := e.http.Get(r.adminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "llmgate_limit_alerts_total{") {
				name, v, _ := strings.Cut(line, " ")
				f, _ := strconv.ParseFloat(v, 64)
				counted[name] += f
			}
		}
	}
	for _, th := range []string{"80", "90", "100"} {
		if n := counted[`llmgate_limit_alerts_total{kind="budget_day",threshold="`+th+`"}`]; n != 1 {
			t.Errorf("alerts counted at %s %%: %v over both replicas, want 1 (%v)", th, n, counted)
		}
	}
}

// TestAlertsAdminBadInput: every body of the alerts endpoints is checked with the field named,
// and a webhook URL the outbound policy refuses is refused when it is made, before any
// connection.
func TestAlertsAdminBadInput(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		// A listener on ::1 (loopback, but outside the test's allow list of 127.0.0.1) counts
		// connections: the refusal must come before any.
		var connects atomic.Int64
		var refusedURL string
		if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					connects.Add(1)
					c.Close()
				}
			}()
			refusedURL = "http://" + ln.Addr().String() + "/hook"
		}
		cases := []struct {
			name, method, path, body, param string
		}{
			{"no url", "POST", "/admin/alerts/webhooks", `{"name":"x"}`, "url"},
			{"not http", "POST", "/admin/alerts/webhooks", `{"name":"x","url":"ftp://127.0.0.1/x"}`, "url"},
			{"credentials in url", "POST", "/admin/alerts/webhooks", `{"name":"x","url":"http://u:p@127.0.0.1/x"}`, "url"},
			{"metadata address", "POST", "/admin/alerts/webhooks", `{"name":"x","url":"http://169.254.169.254/latest"}`, "url"},
			{"unknown field", "POST", "/admin/alerts/webhooks", `{"name":"x","url":"http://127.0.0.1/x","secret":"s"}`, "secret"},
			{"no name", "POST", "/admin/alerts/webhooks", `{"url":"http://127.0.0.1/x"}`, "name"},
			{"threshold zero", "PUT", "/admin/alerts/thresholds", `{"budget_day":[0]}`, "budget_day[0]"},
			{"threshold too high", "PUT", "/admin/alerts/thresholds/key/abc", `{"credit":[80,101]}`, "credit[1]"},
			{"threshold twice", "PUT", "/admin/alerts/thresholds/user/abc", `{"tokens_day":[90,90]}`, "tokens_day[1]"},
			{"unknown kind", "PUT", "/admin/alerts/thresholds", `{"budget_year":[80]}`, "budget_year"},
			{"not a list", "PUT", "/admin/alerts/thresholds", `{"budget_month":80}`, "budget_month"},
			{"bad subject type", "PUT", "/admin/alerts/thresholds/session/abc", `{"budget_day":[80]}`, "subject_type"},
			{"bad event filter", "GET", "/admin/alerts/events?kind=budget_year", ``, "kind"},
			{"bad delivery filter", "GET", "/admin/alerts/deliveries?state=lost", ``, "state"},
			{"bad page", "GET", "/admin/alerts/events?limit=0", ``, "limit"},
		}
		if refusedURL != "" {
			cases = append(cases, struct{ name, method, path, body, param string }{
				"loopback outside the allow list", "POST", "/admin/alerts/webhooks", `{"name":"x","url":"` + refusedURL + `"}`, "url"})
		}
		for _, c := range cases {
			status, raw := e.adminRaw(e.app, c.method, c.path, c.body)
			var ae struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
				} `json:"error"`
			}
			if status != http.StatusBadRequest || json.Unmarshal(raw, &ae) != nil || ae.Error.Param == nil || *ae.Error.Param != c.param {
				t.Errorf("%s: %d %s, want 400 naming %q", c.name, status, raw, c.param)
			}
		}
		if n := connects.Load(); n != 0 {
			t.Errorf("%d connections reached the refused address", n)
		}
		var list struct {
			Data []any `json:"data"`
		}
		e.adminGet("/admin/alerts/webhooks", &list)
		if len(list.Data) != 0 {
			t.Errorf("a refused webhook was stored: %v", list.Data)
		}
	})
}

// TestCreditAndTokenAlerts: on the embedded store, a user's prepaid credit used up past its own
// thresholds (50 and 100 %) and a key's daily tokens past the threshold its tenant sets (50 %)
// each emit one event per crossing, delivered to the webhook; thresholds set over the API
// override the defaults and a tenant's apply to its keys.
func TestCreditAndTokenAlerts(t *testing.T) {
	e := newEnv(t, withSecretKey(testSecretKey))
	recv := newWebhookReceiver(t)
	var hook struct {
		Secret string `json:"secret"`
	}
	if status := e.adminSend(http.MethodPost, "/admin/alerts/webhooks", `{"name":"ops","url":"`+recv.srv.URL+`"}`, &hook); status != http.StatusCreated {
		t.Fatalf("create webhook: %d", status)
	}
	recv.secret.Store(hook.Secret)
	e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)
	for path, body := range map[string]string{
		"/admin/alerts/thresholds/user/credit-user?allow_unknown_subject=true": `{"credit":[50,100]}`,
		"/admin/alerts/thresholds/tenant/default":                              `{"tokens_day":[50],"budget_day":[]}`,
	} {
		if status, raw := e.adminRaw(e.app, http.MethodPut, path, body); status != 200 {
			t.Fatalf("PUT %s: %d %s", path, status, raw)
		}
	}

	// 100 µUSD of credit at 25 µUSD a request: 50 % after the 2nd, 100 % after the 4th.
	payer := e.newKey(createKeyBody{Name: "prepaid", UserID: "credit-user"})
	e.adminSend(http.MethodPost, "/admin/credits/user/credit-user/topup", `{"amount_usd":"0.0001"}`, nil)
	for i := range 4 {
		if status, typ, _ := e.sendMoney(e.app, payer.Key); status != http.StatusOK {
			t.Fatalf("prepaid request %d: %d %s", i+1, status, typ)
		}
		e.waitRecords(payer.ID, i+1)
	}
	// 100 tokens a day at 25 tokens a request: 50 % after the 2nd; the 3rd crosses nothing new.
	counted := e.newKey(createKeyBody{Name: "token-quota"})
	e.putPolicy("/admin/quota/policies/key/"+counted.ID, `{"tokens_per_day":100}`)
	waitPolicy(t, "key", counted.ID, e.app)
	for i := range 3 {
		if status, typ, _ := e.sendMoney(e.app, counted.Key); status != http.StatusOK {
			t.Fatalf("token request %d: %d %s", i+1, status, typ)
		}
		e.waitRecords(counted.ID, i+1)
	}

	waitFor(t, 30*time.Second, "three events delivered", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return len(recv.accepted) >= 3
	})
	time.Sleep(time.Second) // room for a duplicate to show up, were there one
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.problems) > 0 {
		t.Errorf("receiver problems: %v", recv.problems)
	}
	got := map[string]map[string]any{}
	for _, p := range recv.payloads {
		got[fmt.Sprintf("%s %s/%s %v", p["kind"], p["subject_type"], p["subject_id"], p["threshold_percent"])] = p
	}
	if len(got) != 3 || len(recv.payloads) != 3 {
		t.Fatalf("delivered %v, want three distinct events", got)
	}
	// The event carries the figure when the crossing was seen: detection runs beside the
	// requests, so on a loaded machine it may see the 3rd request's charge too, never the 4th's
	// (that one is the 100 % event).
	if p := got["credit user/credit-user 50"]; p == nil || !usedWithin(p["used"], 0.00005, 0.0001) || p["limit"] != "0.0001" || p["period"] != "funded:0.0001" || p["level"] != "warning" {
		t.Errorf("credit 50 %%: %v", p)
	}
	if p := got["credit user/credit-user 100"]; p == nil || p["used"] != "0.0001" || p["level"] != "reached" {
		t.Errorf("credit 100 %%: %v", p)
	}
	if p := got["tokens_day key/"+counted.ID+" 50"]; p == nil || p["unit"] != "tokens" || p["limit"] != "100" || p["tenant_id"] != "default" {
		t.Errorf("tokens 50 %%: %v", p)
	}
}

// usedWithin reports whether an event's used figure (a decimal string) is at least lo and below hi.
func usedWithin(v any, lo, hi float64) bool {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= lo-1e-12 && f < hi-1e-12
}
