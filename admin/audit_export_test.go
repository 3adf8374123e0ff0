package admin_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/store"
)

// auditCSVHeader is the usage export's contract: its columns, in order, named as the fields of
// GET /admin/audit.
var auditCSVHeader = []string{"request_id", "client_request_id", "trace_id", "started_at", "ended_at",
	"tenant_id", "user_id", "key_id", "session_id", "model", "upstream_model", "provider", "deployment",
	"endpoint", "stream", "status", "error_type", "prompt_tokens", "completion_tokens", "cached_tokens",
	"reasoning_tokens", "usage_source", "cost_usd", "price_version", "latency_ms", "ttft_ms",
	"cache_write_tokens", "served_model"}

// exportFormula is a model name a spreadsheet would run as a formula.
const exportFormula = "=HYPERLINK(\"x\",\"y\")"

// seedExportUsage writes n usage records: runs of three started at the same microsecond (so
// page ends fall inside runs), two tenants, two users and keys, failures, unpriced records,
// costs with all twelve decimals, and text that needs CSV quoting.
func seedExportUsage(t *testing.T, st store.Store, n int) {
	t.Helper()
	base := time.Date(2026, 3, 10, 12, 0, 0, 123456000, time.UTC)
	var recs []store.UsageRecord
	for i := range n {
		at := base.Add(time.Duration(i/3) * time.Second)
		r := store.UsageRecord{RequestID: fmt.Sprintf("exp-%03d", i), ClientRequestID: fmt.Sprintf("client-%d", i),
			TraceID: fmt.Sprintf("%032x", i+1), TenantID: "exp-a", UserID: "u1", KeyID: "k1", SessionID: "s,1",
			Model: "gpt-test", UpstreamModel: "up-model", Provider: "up", Deployment: "up/up-model",
			Endpoint: "chat/completions", Stream: i%2 == 0, Status: 200, PromptTokens: int64(10 + i),
			CompletionTokens: int64(20 + i), CachedTokens: int64(i % 4), ReasoningTokens: int64(i % 3),
			UsageSource: "provider", PriceVersion: "v1", LatencyMS: int64(100 + i), TTFTMS: int64(i),
			StartedAt: at, EndedAt: at.Add(1500 * time.Millisecond)}
		if i%3 == 0 {
			r.TenantID = "exp-b"
		}
		if i%4 != 3 { // a fallback model served one in four; the others their own model
			r.ServedModel = r.Model
		} else {
			r.ServedModel = "other"
		}
		if i%2 == 1 {
			r.UserID, r.KeyID = "u2", "k2"
		}
		if i%5 == 4 {
			r.Status, r.ErrorType, r.UsageSource = 502, "upstream_error", "partial"
		}
		if i%6 != 0 {
			cost := int64(123_456_789_012_345) + int64(i)*1_000_000_007 // to the pico-USD
			r.CostPicoUSD = &cost
		}
		switch i {
		case 5:
			r.Model = exportFormula
		case 7:
			r.SessionID, r.UsageSource = "line one\nline \"two\"", "estimated"
		}
		recs = append(recs, r)
	}
	if _, err := st.InsertUsage(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// auditCSV fetches the usage export and parses it; the answer must be a CSV with the contract's
// header.
func auditCSV(t *testing.T, c *admintest.Client, query string) [][]string {
	t.Helper()
	r := c.Must(200, "GET", "/admin/audit.csv?"+query, nil)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("audit.csv?%s: Content-Type %q, Content-Disposition %q", query, ct, r.Header.Get("Content-Disposition"))
	}
	rows, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil || len(rows) == 0 || !slices.Equal(rows[0], auditCSVHeader) {
		t.Fatalf("audit.csv?%s (%v): %.500s", query, err, r.Body)
	}
	return rows[1:]
}

// sameAsAudit checks that the export of query has exactly the records GET /admin/audit lists
// for it, in the same order, every column as the JSON shows it (a text a spreadsheet would
// run as a formula quoted with '), and returns their request ids.
func sameAsAudit(t *testing.T, c *admintest.Client, query string) []string {
	t.Helper()
	rows := auditCSV(t, c, query)
	list := c.Must(200, "GET", "/admin/audit?size=1000&"+query, nil).JSON("data").Array()
	var ids []string
	for i, rec := range list {
		if i >= len(rows) {
			break
		}
		for j, col := range auditCSVHeader {
			want := rec.Get(col).String()
			if rec.Get(col).Type == gjson.String && strings.HasPrefix(want, "=") {
				want = "'" + want
			}
			if rows[i][j] != want {
				t.Errorf("audit.csv?%s: row %d (%s) %s = %q, want %q", query, i+1, rows[i][0], col, rows[i][j], want)
			}
		}
		ids = append(ids, rows[i][0])
	}
	if len(rows) != len(list) {
		t.Errorf("audit.csv?%s: %d rows, GET /admin/audit lists %d records", query, len(rows), len(list))
	}
	return ids
}

// TestAuditExportCSV: GET /admin/audit.csv streams the records GET /admin/audit finds, with the
// same filters, page after page of the store, with exact costs; a tenant-scoped token exports its
// tenant only; a bad filter is the same 400 as the JSON audit's, before any CSV.
func TestAuditExportCSV(t *testing.T) {
	defer admin.SetAuditExportPage(4)()
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		const n = 23
		seedExportUsage(t, s.store, n)

		all := sameAsAudit(t, c, "")
		if len(all) != n || all[0] != "exp-022" || all[1] != "exp-021" || all[n-1] != "exp-000" {
			t.Errorf("the export of everything: %v, want exp-022 … exp-000, newest first", all)
		}
		rows := auditCSV(t, c, "")
		byID := map[string][]string{}
		for _, r := range rows {
			byID[r[0]] = r
		}
		col := func(id, name string) string { return byID[id][slices.Index(auditCSVHeader, name)] }
		for id, want := range map[string]string{"exp-001": "123.457789012352", "exp-006": "", "exp-005": "123.46178901238"} {
			if got := col(id, "cost_usd"); got != want {
				t.Errorf("%s cost_usd = %q, want %q (exact, empty when unpriced)", id, got, want)
			}
		}
		if got := col("exp-005", "model"); got != "'"+exportFormula {
			t.Errorf("a formula model exported as %q", got)
		}
		if got := col("exp-007", "session_id"); got != "line one\nline \"two\"" {
			t.Errorf("a session id with a newline and quotes came back as %q", got)
		}
		if got := col("exp-003", "served_model"); got != "other" {
			t.Errorf("served_model = %q, want the fallback model that served the request", got)
		}
		if got := col("exp-004", "started_at"); got != "2026-03-10T12:00:01.123456Z" {
			t.Errorf("started_at = %q, want RFC 3339 in UTC", got)
		}

		from, to := url.QueryEscape("2026-03-10T12:00:02.123456Z"), url.QueryEscape("2026-03-10T12:00:05Z")
		for q, want := range map[string]int{
			"userId=u1":                               12,
			"keyId=k2&status=200":                     9,
			"tenantId=exp-a&model=gpt-test":           14,
			"status=502":                              4,
			"from=" + from + "&to=" + to:              9,
			"model=" + url.QueryEscape(exportFormula): 1,
			"userId=nobody":                           0,
		} {
			if got := sameAsAudit(t, c, q); len(got) != want {
				t.Errorf("audit.csv?%s: %d records, want %d", q, len(got), want)
			}
		}

		for _, id := range []string{"exp-a", "exp-b"} {
			c.Must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": id})
		}
		scoped := c.As(c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "exp", "role": "billing", "tenant_id": "exp-a"}).JSON("token").String())
		mine := sameAsAudit(t, scoped, "")
		if want := sameAsAudit(t, c, "tenantId=exp-a"); !slices.Equal(mine, want) || len(want) != 15 {
			t.Errorf("a token scoped to exp-a exports %v, want %v", mine, want)
		}
		for _, r := range auditCSV(t, scoped, "status=200") {
			if r[slices.Index(auditCSVHeader, "tenant_id")] != "exp-a" {
				t.Errorf("a token scoped to exp-a exports %s of tenant %s", r[0], r[5])
			}
		}
		scoped.Refused(403, "tenantId", "GET", "/admin/audit.csv?tenantId=exp-b", nil)

		for q, param := range map[string]string{"status=1000": "status", "from=soon": "from", "to=2026-13-01": "to", "status=x": "status"} {
			bad := c.Refused(400, param, "GET", "/admin/audit.csv?"+q, nil)
			json := c.Do("GET", "/admin/audit?"+q, nil)
			if bad.Body != json.Body || !strings.HasPrefix(bad.Header.Get("Content-Type"), "application/json") {
				t.Errorf("audit.csv?%s answered %s (%s), GET /admin/audit %s", q, bad.Body, bad.Header.Get("Content-Type"), json.Body)
			}
		}
	})
}
