package admin_test

import (
	"context"
	"encoding/csv"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/apikey"
	"github.com/llmgate/llmgate/store"
)

// Hostile input to the admin API: SQL metacharacters and LIKE wildcards in every filter, and
// bodies that are too large, malformed or of the wrong shape.

// injectionValues are sent as every filter. None may cause a 500 or match more than it says.
func injectionValues() []string {
	return []string{
		`' OR 1=1 --`, `' OR '1'='1`, `"; DROP TABLE users; --`, `'); DELETE FROM api_keys; --`, `1; SELECT pg_sleep(5)`,
		`%`, `_`, `\`, `%_%`, `\%`, `\_`, `%%`, `%.`, `_ey.`, `key%`, `a_b`, `50%`, `ext%1`, `ext_1`, `und_`,
		`名前`, `ü`, `NULL`, `*`, `$1`, `?`, `;`, `'`, `"`, "\u202e",
		strings.Repeat("%_", 600), strings.Repeat("a", 1001),
	}
}

// filterRule says how a filter matches an item's field: exactly, as a substring, or as a start.
type filterRule int

const (
	exact filterRule = iota
	substring
	startsWith
	actionRule // exact, or a prefix when the value ends in "."
)

func (r filterRule) match(field, v string, fold bool) bool {
	if fold {
		field, v = strings.ToLower(field), strings.ToLower(v)
	}
	switch r {
	case substring:
		return strings.Contains(field, v)
	case startsWith:
		return strings.HasPrefix(field, v)
	case actionRule:
		if strings.HasSuffix(v, ".") {
			return strings.HasPrefix(field, v)
		}
	}
	return field == v
}

// expectFiltered lists the ids of items a filter must return: the same whether LIKE folds ASCII
// case (SQLite) or not (PostgreSQL) for these values, which is checked by computing both.
func expectFiltered(items []gjson.Result, idField string, fields []string, rule filterRule, v string) (cs, ci []string) {
	for _, it := range items {
		var m, mf bool
		for _, f := range fields {
			m = m || rule.match(it.Get(f).String(), v, false)
			mf = mf || rule.match(it.Get(f).String(), v, true)
		}
		if m {
			cs = append(cs, it.Get(idField).String())
		}
		if mf {
			ci = append(ci, it.Get(idField).String())
		}
	}
	return cs, ci
}

// injectionData makes tenants, users, keys and tokens whose names hold the characters a broken
// escape would let loose, next to look-alikes an unescaped wildcard would wrongly match.
func injectionData(t *testing.T, c *admintest.Client) (key admintest.Resp) {
	t.Helper()
	for _, tn := range [][2]string{{"inj-pct", "50% off"}, {"inj-und", "a_b"}, {"inj-x", "50X offaXb"}, {"inj-bs", `back\slash`},
		{"inj-uni", "ünïcødé 名前"}, {"inj-quote", `O'Brien "quoted"; --`}} {
		r := c.Must(201, "POST", "/admin/tenants", map[string]any{"id": tn[0], "name": tn[1]})
		if r.JSON("name").String() != tn[1] {
			t.Errorf("tenant name %q came back as %q", tn[1], r.JSON("name").String())
		}
	}
	for _, u := range [][4]string{{"inj-u1", "inj-pct", "pct%x@example.com", "ext%1"}, {"inj-u2", "inj-und", "und_x@example.com", "ext_1"},
		{"inj-u3", "inj-x", "undXx@example.com", "extX1"}, {"inj-u4", "inj-bs", `bs\x@example.com`, `ext\1`},
		{"inj-u5", "inj-uni", "ü@example.com", "名前"}, {"inj-u6", "inj-quote", "q@example.com", `' OR 1=1 --`}} {
		c.Must(201, "POST", "/admin/users", map[string]any{"id": u[0], "tenant_id": u[1], "email": u[2], "external_id": u[3]})
	}
	for i, n := range []string{"key%pct", "key_und", "keyXund", `key\bs`, "ключ", `'; DROP TABLE api_keys; --`} {
		r := c.Must(201, "POST", "/admin/keys", map[string]any{"name": n, "user_id": "inj-u" + string(rune('1'+i))})
		if i == 0 {
			key = r
		}
	}
	for _, n := range []string{"tok%pct", "tok_und", "tokXund", `tok\bs`} {
		c.Must(201, "POST", "/admin/tokens", map[string]any{"name": n, "role": "viewer"})
	}
	return key
}

// TestAdminFiltersResistInjection: every list filter takes SQL metacharacters, LIKE wildcards,
// escapes, unicode and very long values without a 500 and without matching anything but what the
// value literally says; the tables are intact afterwards.
func TestAdminFiltersResistInjection(t *testing.T) {
	bothStores(t, func(t *testing.T, srv *server) {
		c := srv.client(t)
		key := injectionData(t, c)
		// one request of the first key, written as the gateway's usage recorder writes it
		now := time.Now().UTC()
		if n, err := srv.store.InsertUsage(context.Background(), []store.UsageRecord{{RequestID: uuid.NewString(),
			TraceID: uuid.NewString(), KeyID: key.JSON("id").String(), UserID: "inj-u1", TenantID: "inj-pct", Model: "gpt-test",
			UpstreamModel: "up-model", Provider: "up", Deployment: "up/up-model", Endpoint: "chat/completions", Status: 200,
			PromptTokens: 8, CompletionTokens: 20, UsageSource: "provider", LatencyMS: 5, StartedAt: now.Add(-5 * time.Millisecond),
			EndedAt: now}}); err != nil || n != 1 {
			t.Fatalf("writing a usage record: %d written, %v", n, err)
		}
		month := now.Format("2006-01")
		if sum := c.Must(200, "GET", "/admin/billing/summary?month="+month+"&userId=inj-u1", nil); sum.JSON("total.requests").Int() != 1 {
			t.Fatalf("the billing rollup: %s", sum.Body)
		}

		type list struct {
			path, idField string
			max           int // the longest value the endpoint accepts; longer ones may be refused with 400
		}
		lists := map[string]list{
			"tenants":   {"/admin/tenants?limit=1000", "id", 200},
			"users":     {"/admin/users?limit=1000", "id", 254},
			"keys":      {"/admin/keys?limit=1000", "id", 200},
			"tokens":    {"/admin/tokens?limit=1000", "id", 200},
			"audit-log": {"/admin/audit-log?limit=1000", "id", 300},
			"audit":     {"/admin/audit?size=1000", "request_id", 1 << 20},
		}
		full := map[string][]gjson.Result{}
		for name, l := range lists {
			full[name] = c.Must(200, "GET", l.path, nil).JSON("data").Array()
			if len(full[name]) == 0 {
				t.Fatalf("%s is empty before the attack", name)
			}
		}
		filters := []struct {
			list, param string
			fields      []string
			rule        filterRule
		}{
			{"tenants", "q", []string{"id", "name"}, substring},
			{"users", "tenant_id", []string{"tenant_id"}, exact},
			{"users", "tier", []string{"tier"}, exact},
			{"users", "external_id", []string{"external_id"}, exact},
			{"users", "email", []string{"email"}, substring},
			{"users", "q", []string{"id", "email", "external_id"}, substring},
			{"keys", "user_id", []string{"user_id"}, exact},
			{"keys", "tenant_id", []string{"tenant_id"}, exact},
			{"keys", "name", []string{"name"}, substring},
			{"keys", "prefix", []string{"prefix"}, startsWith},
			{"tokens", "tenant_id", []string{"tenant_id"}, exact},
			{"tokens", "name", []string{"name"}, substring},
			{"audit-log", "actor", []string{"actor"}, exact},
			{"audit-log", "action", []string{"action"}, actionRule},
			{"audit-log", "target", []string{"target"}, exact},
			{"audit-log", "tenant_id", []string{"tenant_id"}, exact},
			{"audit", "userId", []string{"user_id"}, exact},
			{"audit", "keyId", []string{"key_id"}, exact},
			{"audit", "model", []string{"model"}, exact},
		}
		// the literal values that must find exactly their item, not every item
		positives := map[string]bool{}
		checked := 0
		for _, f := range filters {
			l := lists[f.list]
			for _, v := range injectionValues() {
				r := c.Do("GET", l.path+"&"+f.param+"="+url.QueryEscape(v), nil)
				what := f.list + "?" + f.param + "=" + abbrev(v)
				checked++
				if r.Status == 400 && len(v) > l.max {
					admintest.CheckError(t, r, 400, f.param, what)
					continue
				}
				if r.Status != 200 {
					t.Errorf("%s: HTTP %d: %.300s", what, r.Status, r.Body)
					continue
				}
				var got []string
				for _, it := range r.JSON("data").Array() {
					got = append(got, it.Get(l.idField).String())
				}
				cs, ci := expectFiltered(full[f.list], l.idField, f.fields, f.rule, v)
				if !admintest.SameSet(got, cs) && !admintest.SameSet(got, ci) {
					t.Errorf("%s: %d items %v, want %v", what, len(got), abbrevAll(got), abbrevAll(cs))
				}
				if len(cs) > 0 && len(cs) < len(full[f.list]) {
					positives[f.list+"?"+f.param+"="+v] = true
				}
			}
		}
		// the data must make the check bite: literal % and _ found their own items only
		for _, p := range []string{"tenants?q=%", "tenants?q=_", "tenants?q=\\", "users?email=%", "users?external_id=ext_1",
			"keys?name=%", "keys?name=_", "tokens?name=%", "tokens?name=_", "audit-log?action=%."} {
			if strings.HasSuffix(p, "%.") {
				continue // no action starts with "%.": it must match nothing, which the loop checked
			}
			if !positives[p] {
				t.Errorf("%s matched nothing or everything: the test data does not exercise escaping", p)
			}
		}
		// whatever the filter, status is one of the allowed values
		for _, v := range injectionValues() {
			admintest.CheckError(t, c.Do("GET", "/admin/keys?status="+url.QueryEscape(v), nil), 400, "status", "keys?status="+abbrev(v))
			admintest.CheckError(t, c.Do("GET", "/admin/tokens?role="+url.QueryEscape(v), nil), 400, "role", "tokens?role="+abbrev(v))
		}

		// billing: exact ids, so no injected value finds a row, while the real one does
		for _, v := range injectionValues() {
			for _, p := range []string{"userId", "tenantId"} {
				s := c.Do("GET", "/admin/billing/summary?month="+month+"&"+p+"="+url.QueryEscape(v), nil)
				if s.Status != 200 || s.JSON("total.requests").Int() != 0 {
					t.Errorf("billing/summary?%s=%s: HTTP %d %.200s", p, abbrev(v), s.Status, s.Body)
				}
				r := c.Do("GET", "/admin/billing/records.csv?"+p+"="+url.QueryEscape(v), nil)
				rows, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
				if r.Status != 200 || err != nil || len(rows) != 1 {
					t.Errorf("billing/records.csv?%s=%s: HTTP %d, %d rows (%v)", p, abbrev(v), r.Status, len(rows), err)
				}
			}
			checked += 4
		}
		for _, p := range []string{"userId=inj-u1", "tenantId=inj-pct"} {
			rows, _ := csv.NewReader(strings.NewReader(c.Must(200, "GET", "/admin/billing/records.csv?"+p, nil).Body)).ReadAll()
			if len(rows) != 2 {
				t.Errorf("records.csv?%s: %d rows, want the header and one", p, len(rows))
			}
		}

		// ids in paths
		for _, v := range injectionValues() {
			pv := url.PathEscape(v)
			for _, p := range []string{"/admin/tenants/", "/admin/users/", "/admin/keys/", "/admin/tokens/"} {
				if r := c.Do("GET", p+pv, nil); r.Status != 404 {
					t.Errorf("GET %s%s: HTTP %d, want 404", p, abbrev(v), r.Status)
				}
			}
			if r := c.Do("GET", "/admin/audit/"+pv, nil); r.Status != 200 || len(r.JSON("data").Array()) != 0 {
				t.Errorf("GET /admin/audit/%s: HTTP %d %.200s", abbrev(v), r.Status, r.Body)
			}
			checked += 5
		}
		t.Logf("%d hostile requests", checked)

		// nothing was lost or changed, and the key still authenticates
		for name, l := range lists {
			after := c.Must(200, "GET", l.path, nil).JSON("data").Array()
			if len(after) != len(full[name]) {
				t.Errorf("%s: %d items after the attack, %d before", name, len(after), len(full[name]))
			}
		}
		if k, err := srv.store.KeyBySecret(context.Background(), apikey.Hash(key.JSON("key").String()), time.Now()); err != nil ||
			k.ID != key.JSON("id").String() || k.RevokedAt != nil {
			t.Errorf("the key after the attack: %+v, %v", k, err)
		}
		if g := c.Must(200, "GET", "/admin/tenants/inj-quote", nil); g.JSON("name").String() != `O'Brien "quoted"; --` {
			t.Errorf("tenant name: %s", g.Body)
		}
	})
}

func abbrev(s string) string {
	if len(s) > 24 {
		return s[:20] + "…(" + strconv.Itoa(len(s)) + ")"
	}
	return s
}

func abbrevAll(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, abbrev(s))
	}
	if len(out) > 8 {
		out = append(out[:8], "…")
	}
	return out
}

// TestAdminRejectsBadBodies: oversized bodies get 413; malformed JSON, trailing data, unknown
// fields, wrong types and empty bodies get 400 naming the field where there is one; nothing is
// created by any of them.
func TestAdminRejectsBadBodies(t *testing.T) {
	bothStores(t, func(t *testing.T, srv *server) {
		c := srv.client(t)
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "body-user"})
		k := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "body-key", "user_id": "body-user"})
		kid := k.JSON("id").String()
		count := func() map[string]int {
			out := map[string]int{}
			for _, p := range []string{"/admin/tenants", "/admin/users", "/admin/keys", "/admin/tokens", "/admin/audit-log"} {
				out[p] = len(c.Must(200, "GET", p+"?limit=1000", nil).JSON("data").Array())
			}
			return out
		}
		before := count()
		huge := `{"name":"` + strings.Repeat("a", 1<<20+1024) + `"}`
		routes := []struct {
			method, path string
			wrong        map[string]string // body → the param its 400 must name
			emptyOK      bool              // an empty body is allowed (rotate)
		}{
			{"POST", "/admin/tenants", map[string]string{`{"id":"x","name":5}`: "name", `{"models":"gpt"}`: "models",
				`{"limits":{"rpm":"ten"}}`: "limits.rpm", `{"limits":{"rpm":1.5}}`: "limits.rpm", `{"limits":[]}`: "limits"}, false},
			{"PATCH", "/admin/tenants/default", map[string]string{`{"name":5}`: "name", `{"limits":{"rpm":"ten"}}`: "limits.rpm",
				`{"models":[1]}`: "models"}, false},
			{"POST", "/admin/users", map[string]string{`{"tier":1}`: "tier", `{"metadata":[]}`: "metadata", `{"id":{}}`: "id"}, false},
			{"PATCH", "/admin/users/body-user", map[string]string{`{"email":true}`: "email", `{"tenant_id":7}`: "tenant_id"}, false},
			{"POST", "/admin/keys", map[string]string{`{"models":"gpt-test"}`: "models", `{"limits":{"tpm":"x"}}`: "limits.tpm",
				`{"user_id":1}`: "user_id"}, false},
			{"PATCH", "/admin/keys/" + kid, map[string]string{`{"name":[]}`: "name", `{"metadata":{"a":1}}`: "metadata"}, false},
			{"POST", "/admin/keys/" + kid + "/rotate", map[string]string{`{"grace_seconds":"60"}`: "grace_seconds"}, true},
			{"POST", "/admin/tokens", map[string]string{`{"role":["admin"]}`: "role"}, false},
			{"PUT", "/admin/quota/policy/body-user", map[string]string{`{"userRpm":"5"}`: "userRpm"}, false},
			{"PUT", "/admin/quota/policies/user/body-user", map[string]string{`{"rpm":1.5}`: "rpm", `{"budget_usd_per_day":"1.0000001"}`: "budget_usd_per_day"}, false},
			{"PUT", "/admin/pricing/body-model", map[string]string{`{"input_per_million":true,"output_per_million":"1"}`: "input_per_million"}, false},
			{"POST", "/admin/credits/user/body-user/topup", map[string]string{`{"amount_usd":{}}`: "amount_usd", `{"amount_usd":"1","note":5}`: "note"}, false},
		}
		for _, r := range routes {
			rt := r.method + " " + r.path
			admintest.CheckError(t, c.Do(r.method, r.path, huge), 413, "", rt+" with a body over 1 MiB")
			for _, b := range []string{`{"name":`, `{"name":"x"} {"name":"y"}`, `{"name":"x"}garbage`, `[]`, `hello`, `{"a":1,}`, "\x00"} {
				admintest.CheckError(t, c.Do(r.method, r.path, b), 400, "-", rt+" with "+shortQuote(b))
			}
			admintest.CheckError(t, c.Do(r.method, r.path, `{"zzz_unknown":1}`), 400, "zzz_unknown", rt+" with an unknown field")
			if !r.emptyOK {
				admintest.CheckError(t, c.Do(r.method, r.path, ""), 400, "", rt+" with an empty body")
			}
			for b, param := range r.wrong {
				admintest.CheckError(t, c.Do(r.method, r.path, b), 400, param, rt+" with "+b)
			}
		}
		after := count()
		for p, n := range before {
			if after[p] != n {
				t.Errorf("%s: %d items after the bad bodies, %d before", p, after[p], n)
			}
		}
		if g := c.Must(200, "GET", "/admin/keys/"+kid, nil); g.JSON("prefix").String() != k.JSON("prefix").String() || g.JSON("name").String() != "body-key" {
			t.Errorf("the key changed: %s", g.Body)
		}
		if !slices.Contains(c.Must(200, "GET", "/admin/users", nil).IDs(), "body-user") {
			t.Errorf("body-user is gone")
		}
	})
}

func shortQuote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

// TestAdminTimeFieldErrorsNameTheField: an expires_at that is not an RFC 3339 string is refused
// with 400 naming expires_at, like every other field of the wrong shape.
func TestAdminTimeFieldErrorsNameTheField(t *testing.T) {
	srv := newServer(t, backend{})
	c := srv.client(t)
	kid := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "time-key"}).JSON("id").String()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/admin/keys", `{"expires_at":"tomorrow"}`},
		{"POST", "/admin/keys", `{"expires_at":5}`},
		{"PATCH", "/admin/keys/" + kid, `{"expires_at":"2026-13-01T00:00:00Z"}`},
		{"POST", "/admin/tokens", `{"name":"x","role":"viewer","expires_at":"soon"}`},
	} {
		admintest.CheckError(t, c.Do(tc.method, tc.path, tc.body), 400, "expires_at", tc.method+" "+tc.path+" with "+tc.body)
	}
}
