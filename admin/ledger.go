package admin

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

func (s *Server) routeLedger(a *gin.RouterGroup) {
	s.handle(a, http.MethodGet, "/pricing", read(areaPricing), s.listPrices)
	// Catch-all: upstream model names may contain "/" (meta-llama/Llama-3.1-8B-Instruct).
	s.handle(a, http.MethodGet, "/pricing/*model", read(areaPricing), s.priceHistory)
	s.handle(a, http.MethodPut, "/pricing/*model", global(areaPricing), s.putPrice)
	s.handle(a, http.MethodGet, "/audit", read(areaUsage), s.listAudit)
	s.handle(a, http.MethodGet, "/audit/:traceId", read(areaUsage), s.auditTrace)
	// Beside /audit rather than under it, where it would hide a trace id spelled "export.csv".
	s.handle(a, http.MethodGet, "/audit.csv", read(areaUsage), s.exportAudit)
	s.handle(a, http.MethodGet, "/billing/summary", read(areaBilling), s.billingSummary)
	s.handle(a, http.MethodGet, "/billing/records.csv", read(areaBilling), s.billingCSV)
	s.handle(a, http.MethodGet, "/credits", read(areaCredits), s.listCreditAccounts)
	s.handle(a, http.MethodGet, "/credits/:subjectType/:subjectId", read(areaCredits), s.creditBalance)
	s.handle(a, http.MethodGet, "/credits/:subjectType/:subjectId/entries", read(areaCredits), s.creditEntries)
	s.handle(a, http.MethodPost, "/credits/:subjectType/:subjectId/topup", global(areaCredits), s.creditTopUp)
	s.handle(a, http.MethodPost, "/credits/:subjectType/:subjectId/adjust", global(areaCredits), s.creditAdjust)
}

// usd is a money amount in a request body: a JSON number or a decimal string, parsed exactly.
type usd string

func (u *usd) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	*u = usd(s)
	return nil
}

// priceBody is PUT /admin/pricing/{model}: USD per 1M tokens, and the unit prices: USD per image
// by "quality/size", "size" or "default"; per second of input audio; per 1M characters of speech
// input; per request. The token prices come as a pair, required unless a unit price is given.
type priceBody struct {
	InputPerMillion       *usd `json:"input_per_million"`
	OutputPerMillion      *usd `json:"output_per_million"`
	CachedInputPerMillion *usd `json:"cached_input_per_million"`
	ReasoningPerMillion   *usd `json:"reasoning_per_million"`
	// CacheWritePerMillion prices prompt tokens written to the provider's cache; absent or 0
	// means the input price.
	CacheWritePerMillion *usd `json:"cache_write_per_million"`
	// Image is a JSON object; nil when absent.
	Image                *map[string]usd `json:"image"`
	AudioPerSecond       *usd            `json:"audio_per_second"`
	CharactersPerMillion *usd            `json:"characters_per_million"`
	PerRequest           *usd            `json:"per_request"`
}

// hasUnits reports whether the body prices anything beyond tokens.
func (b priceBody) hasUnits() bool {
	return b.Image != nil || b.AudioPerSecond != nil || b.CharactersPerMillion != nil || b.PerRequest != nil
}

func microOf(c *gin.Context, field string, v *usd, required bool) (int64, bool) {
	if v == nil {
		if required {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "missing_field", field, field+": required (USD per 1M tokens), "+
				"unless the model is priced by image, audio_per_second, characters_per_million or per_request alone.")
			return 0, false
		}
		return 0, true
	}
	m, err := billing.ParseUSD(string(*v))
	if err != nil || m < 0 {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", field, field+": want a non-negative decimal USD amount with at most 6 decimal places.")
		return 0, false
	}
	return m, true
}

func priceView(p store.ModelPrice) gin.H {
	usdOf := func(micro int64) string {
		return billing.FormatPico(big.NewInt(0).Mul(big.NewInt(micro), big.NewInt(1_000_000)))
	}
	images := make(map[string]string, len(p.ImagePrices))
	for k, v := range p.ImagePrices {
		images[k] = usdOf(v)
	}
	return gin.H{"model": p.Model, "input_per_million": usdOf(p.InputPerM), "output_per_million": usdOf(p.OutputPerM),
		"cached_input_per_million": usdOf(p.CachedInputPerM), "reasoning_per_million": usdOf(p.ReasoningPerM),
		"image": images, "audio_per_second": usdOf(p.AudioSecond), "characters_per_million": usdOf(p.CharactersPerM),
		"per_request": usdOf(p.Request), "cache_write_per_million": usdOf(p.CacheWritePerM),
		"effective_from": p.EffectiveFrom, "version": p.Version}
}

func (s *Server) listPrices(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	ps, err := s.d.Prices.Current(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, window(ps, limit, offset), limit, offset, priceView)
}

func (s *Server) priceHistory(c *gin.Context) {
	ps, err := s.d.Store.PriceHistory(c.Request.Context(), modelParam(c))
	if err != nil {
		s.internal(c, err)
		return
	}
	if len(ps) == 0 {
		fail(c, http.StatusNotFound, api.TypeNotFound, "price_not_found", "model", "No price for that model.")
		return
	}
	out := make([]gin.H, 0, len(ps))
	for _, p := range ps {
		out = append(out, priceView(p))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

// putPrice makes a new price version effective immediately on every replica.
func (s *Server) putPrice(c *gin.Context) {
	var b priceBody
	if !decode(c, &b) {
		return
	}
	model := modelParam(c)
	if model == "" || len(model) > 200 {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "model", "model: 1 to 200 characters.")
		return
	}
	p := store.ModelPrice{Model: model}
	var ok bool
	tokens := !b.hasUnits() || b.InputPerMillion != nil || b.OutputPerMillion != nil
	if p.InputPerM, ok = microOf(c, "input_per_million", b.InputPerMillion, tokens); !ok {
		return
	}
	if p.OutputPerM, ok = microOf(c, "output_per_million", b.OutputPerMillion, tokens); !ok {
		return
	}
	if b.Image != nil {
		if len(*b.Image) == 0 {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "image",
				`image: want an object of "quality/size", "size" or "default" to USD per image.`)
			return
		}
		p.ImagePrices = make(map[string]int64, len(*b.Image))
		for _, k := range billing.ImageKeys(usdKeys(*b.Image)) {
			if err := billing.ValidImageKey(k); err != nil {
				fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "image", "image: "+err.Error()+".")
				return
			}
			v := (*b.Image)[k]
			if p.ImagePrices[k], ok = microOf(c, "image."+k, &v, true); !ok {
				return
			}
		}
	}
	for _, f := range []struct {
		field string
		v     *usd
		dst   *int64
	}{
		{"audio_per_second", b.AudioPerSecond, &p.AudioSecond},
		{"characters_per_million", b.CharactersPerMillion, &p.CharactersPerM},
		{"per_request", b.PerRequest, &p.Request},
	} {
		if *f.dst, ok = microOf(c, f.field, f.v, false); !ok {
			return
		}
	}
	if p.CachedInputPerM, ok = microOf(c, "cached_input_per_million", b.CachedInputPerMillion, false); !ok {
		return
	}
	if p.ReasoningPerM, ok = microOf(c, "reasoning_per_million", b.ReasoningPerMillion, false); !ok {
		return
	}
	if p.CacheWritePerM, ok = microOf(c, "cache_write_per_million", b.CacheWritePerMillion, false); !ok {
		return
	}
	var before any
	if old, err := s.d.Store.PriceHistory(c.Request.Context(), model); err == nil && len(old) > 0 {
		before = priceView(old[0])
	}
	p, err := s.d.Prices.Put(c.Request.Context(), p)
	if err != nil {
		s.internal(c, err)
		return
	}
	s.audit(c, "price.put", model, "", before, priceView(p))
	c.JSON(http.StatusOK, priceView(p))
}

// usdKeys lets billing.ImageKeys order the keys of a body's image table.
func usdKeys(m map[string]usd) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k := range m {
		out[k] = 0
	}
	return out
}

// usageView is one usage record as the audit API shows it (snake_case, cost in decimal USD).
func usageView(r store.UsageRecord) gin.H {
	var cost any
	if r.CostPicoUSD != nil {
		cost = billing.FormatPico64(*r.CostPicoUSD)
	}
	return gin.H{"request_id": r.RequestID, "client_request_id": r.ClientRequestID, "trace_id": r.TraceID,
		"key_id": r.KeyID, "user_id": r.UserID, "tenant_id": r.TenantID, "session_id": r.SessionID,
		"model": r.Model, "upstream_model": r.UpstreamModel, "provider": r.Provider, "deployment": r.Deployment,
		"endpoint": r.Endpoint, "stream": r.Stream, "status": r.Status, "error_type": r.ErrorType,
		"prompt_tokens": r.PromptTokens, "completion_tokens": r.CompletionTokens, "cached_tokens": r.CachedTokens,
		"reasoning_tokens": r.ReasoningTokens, "usage_source": r.UsageSource, "units": r.Units, "unit": r.Unit, "cost_usd": cost, "replay_of": r.ReplayOf,
		"price_version": r.PriceVersion, "latency_ms": r.LatencyMS, "ttft_ms": r.TTFTMS,
		"started_at": r.StartedAt, "ended_at": r.EndedAt, "served_model": r.ServedModel,
		"experiment": r.Experiment, "variant": r.Variant, "cache_write_tokens": r.CacheWriteTokens}
}

// timeParam reads an RFC 3339 time or a yyyy-MM-dd date.
func timeParam(c *gin.Context, name string) (time.Time, bool) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", name, name+": want RFC 3339 (2026-11-01T00:00:00Z) or a date (2026-11-01).")
	return time.Time{}, false
}

// auditFilter reads the usage audit's filters (camelCase query): userId, keyId, tenantId (a
// tenant-scoped token's own tenant whatever it asks), model, status, from, to, traceId,
// clientRequestId. A bad one is answered here.
func auditFilter(c *gin.Context) (store.UsageFilter, bool) {
	f := store.UsageFilter{UserID: c.Query("userId"), KeyID: c.Query("keyId"), Model: c.Query("model"),
		TraceID: c.Query("traceId"), ClientRequestID: c.Query("clientRequestId")}
	var ok bool
	if f.TenantID, ok = scopedTenant(c, c.Query("tenantId"), "tenantId"); !ok {
		return f, false
	}
	if f.From, ok = timeParam(c, "from"); !ok {
		return f, false
	}
	if f.To, ok = timeParam(c, "to"); !ok {
		return f, false
	}
	if f.Status, ok = intParam(c, "status", 0, 0, 999); !ok {
		return f, false
	}
	return f, true
}

// listAudit is GET /admin/audit, in the governance API's shape that existing clients use (camelCase
// query): the filters of auditFilter, page, size.
func (s *Server) listAudit(c *gin.Context) {
	f, ok := auditFilter(c)
	if !ok {
		return
	}
	page, ok := intParam(c, "page", 1, 1, 1<<20)
	if !ok {
		return
	}
	if f.Limit, ok = intParam(c, "size", 50, 1, 1000); !ok {
		return
	}
	f.Offset = (page - 1) * f.Limit
	s.writeUsage(c, f, gin.H{"page": page, "size": f.Limit})
}

// auditTrace is GET /admin/audit/{traceId}: every record of one trace.
func (s *Server) auditTrace(c *gin.Context) {
	s.writeUsage(c, store.UsageFilter{TraceID: c.Param("traceId"), TenantID: who(c).Tenant, Limit: 1000}, gin.H{"trace_id": c.Param("traceId")})
}

func (s *Server) writeUsage(c *gin.Context, f store.UsageFilter, extra gin.H) {
	recs, err := s.d.Store.ListUsage(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := make([]gin.H, 0, len(recs))
	for _, r := range recs {
		out = append(out, usageView(r))
	}
	extra["object"], extra["data"] = "list", out
	c.JSON(http.StatusOK, extra)
}

// auditExportPage is how many records the usage export reads from the store at a time: enough
// that the per-query cost does not matter, few enough that a page's memory does not either.
var auditExportPage = 1000

// auditExportWriteWindow is how long a page of the usage export may take to reach the client. The
// admin listener's write timeout bounds a whole answer, which an export of months would
// overrun; each page gets this window instead, so only a client that stops reading is cut off.
const auditExportWriteWindow = 30 * time.Second

// auditCSVHeader names the usage export's columns as GET /admin/audit names the fields.
var auditCSVHeader = []string{"request_id", "client_request_id", "trace_id", "started_at", "ended_at",
	"tenant_id", "user_id", "key_id", "session_id", "model", "upstream_model", "provider", "deployment",
	"endpoint", "stream", "status", "error_type", "prompt_tokens", "completion_tokens", "cached_tokens",
	"reasoning_tokens", "usage_source", "cost_usd", "price_version", "latency_ms", "ttft_ms",
	"cache_write_tokens", "served_model"}

// usageCSVRow fills row (len(auditCSVHeader)) with one record. Text that callers or the config
// chose goes through csvSafe; times are RFC 3339 in UTC to the microsecond the stores keep; the
// cost is the exact decimal of GET /admin/audit, empty when the model had no price.
func usageCSVRow(r store.UsageRecord, row []string) []string {
	cost := ""
	if r.CostPicoUSD != nil {
		cost = billing.FormatPico64(*r.CostPicoUSD)
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	return append(row[:0], csvSafe(r.RequestID), csvSafe(r.ClientRequestID), csvSafe(r.TraceID),
		r.StartedAt.UTC().Format(time.RFC3339Nano), r.EndedAt.UTC().Format(time.RFC3339Nano),
		csvSafe(r.TenantID), csvSafe(r.UserID), csvSafe(r.KeyID), csvSafe(r.SessionID), csvSafe(r.Model),
		csvSafe(r.UpstreamModel), csvSafe(r.Provider), csvSafe(r.Deployment), r.Endpoint,
		strconv.FormatBool(r.Stream), strconv.Itoa(r.Status), r.ErrorType, i64(r.PromptTokens),
		i64(r.CompletionTokens), i64(r.CachedTokens), i64(r.ReasoningTokens), r.UsageSource, cost,
		csvSafe(r.PriceVersion), i64(r.LatencyMS), i64(r.TTFTMS), i64(r.CacheWriteTokens), csvSafe(r.ServedModel))
}

// exportAudit is GET /admin/audit.csv: every record GET /admin/audit finds for the same filters,
// in its order (newest first), as CSV. It streams: the store is read a page at a time by keyset,
// and each page is written and flushed before the next is read, so memory does not grow with the
// range. A client that goes away cancels the request's context, which ends the next query. The
// status is sent once the first page is read; a later store failure can no longer become an error
// answer, so it aborts the connection, and the client sees a cut transfer, not a short CSV.
func (s *Server) exportAudit(c *gin.Context) {
	f, ok := auditFilter(c)
	if !ok {
		return
	}
	f.Limit = auditExportPage
	ctx := c.Request.Context()
	recs, err := s.d.Store.ListUsage(ctx, f)
	if err != nil {
		s.internal(c, err)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="usage_records.csv"`)
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	w := csv.NewWriter(c.Writer)
	_ = w.Write(auditCSVHeader)
	row := make([]string, 0, len(auditCSVHeader))
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(auditExportWriteWindow)) // unsupported: the server's own
		for _, r := range recs {
			_ = w.Write(usageCSVRow(r, row))
		}
		w.Flush()
		if w.Error() != nil {
			return // the client went away
		}
		c.Writer.Flush()
		if len(recs) < f.Limit {
			return
		}
		last := recs[len(recs)-1]
		f.After = &store.UsageCursor{StartedAt: last.StartedAt, RequestID: last.RequestID}
		if recs, err = s.d.Store.ListUsage(ctx, f); err != nil {
			if ctx.Err() == nil {
				s.d.Log.Error("usage export failed after its first page", "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// billingSummary is GET /admin/billing/summary?userId=&month=yyyy-MM, in the governance API's
// shape, from the daily rollups. Without month it is the current UTC month's, and the answer's
// month says which that was.
func (s *Server) billingSummary(c *gin.Context) {
	name := c.Query("month")
	if name == "" {
		name = time.Now().UTC().Format("2006-01")
	}
	month, err := time.Parse("2006-01", name)
	if err != nil {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "month", "month: want yyyy-MM (default: the current month, UTC).")
		return
	}
	user := c.Query("userId")
	tenant, ok := scopedTenant(c, c.Query("tenantId"), "tenantId")
	if !ok {
		return
	}
	rows, err := s.d.Store.BillingRecords(c.Request.Context(), store.BillingFilter{UserID: user, TenantID: tenant,
		From: month, To: month.AddDate(0, 1, 0), Limit: 100000})
	if err != nil {
		s.internal(c, err)
		return
	}
	total := &billing.Rollup{}
	byModel := map[string]*billing.Rollup{}
	for _, r := range rows {
		m := byModel[r.Model]
		if m == nil {
			m = &billing.Rollup{}
			byModel[r.Model] = m
		}
		total.Add(r)
		m.Add(r)
	}
	models := gin.H{}
	for name, a := range byModel {
		models[name] = a
	}
	c.JSON(http.StatusOK, gin.H{"userId": user, "month": name, "total": total, "models": models})
}

// billingCSV exports rollup rows as CSV: GET /admin/billing/records.csv?userId=&tenantId=&from=&to=.
func (s *Server) billingCSV(c *gin.Context) {
	f := store.BillingFilter{UserID: c.Query("userId"), KeyID: c.Query("keyId"), Model: c.Query("model"), Limit: 1_000_000}
	var ok bool
	if f.TenantID, ok = scopedTenant(c, c.Query("tenantId"), "tenantId"); !ok {
		return
	}
	if f.From, ok = timeParam(c, "from"); !ok {
		return
	}
	if f.To, ok = timeParam(c, "to"); !ok {
		return
	}
	rows, err := s.d.Store.BillingRecords(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="billing_records.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	_ = w.Write([]string{"day", "tenant_id", "user_id", "key_id", "model", "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "cache_write_tokens"})
	for _, r := range rows {
		cost := "" // the row of the group's unpriced usage: its cost is unknown, not $0
		if r.CostPicoUSD != nil {
			cost = billing.FormatPico(r.CostPicoUSD)
		}
		_ = w.Write([]string{r.Day.Format("2006-01-02"), csvSafe(r.TenantID), csvSafe(r.UserID), csvSafe(r.KeyID), csvSafe(r.Model),
			strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.PromptTokens, 10), strconv.FormatInt(r.CompletionTokens, 10),
			strconv.FormatInt(r.CachedTokens, 10), strconv.FormatInt(r.ReasoningTokens, 10), cost,
			strconv.FormatInt(r.CacheWriteTokens, 10)})
	}
	w.Flush()
}

// csvSafe defuses spreadsheet formula injection in ids that came from API callers.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

var creditSubjects = map[quota.Kind]bool{quota.KindUser: true, quota.KindTenant: true}

func creditSubject(c *gin.Context) (typ quota.Kind, id string, ok bool) {
	typ, id = quota.Kind(c.Param("subjectType")), c.Param("subjectId")
	if !creditSubjects[typ] {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "subjectType", "subjectType: want user or tenant.")
		return "", "", false
	}
	return typ, id, true
}

func accountView(a store.CreditAccount, entries []store.CreditEntry) gin.H {
	out := make([]gin.H, 0, len(entries))
	for _, e := range entries {
		out = append(out, creditEntryView(e))
	}
	return gin.H{"account_id": a.ID, "subject_type": a.SubjectType, "subject_id": a.SubjectID,
		"balance_usd": billing.FormatPico(a.BalancePicoUSD), "updated_at": a.UpdatedAt, "entries": out}
}

// listCreditAccounts is GET /admin/credits: the balances of every account, by subject type and
// id, narrowed by subject_type and tenant_id (a tenant's account and its users'; a tenant-scoped
// token's own tenant whatever it asks).
func (s *Server) listCreditAccounts(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.CreditAccountFilter{SubjectType: c.Query("subject_type"), Limit: limit + 1, Offset: offset}
	if f.SubjectType != "" && !creditSubjects[quota.Kind(f.SubjectType)] {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "subject_type", "subject_type: want user or tenant.")
		return
	}
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return
	}
	as, err := s.d.Store.ListCreditAccounts(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, as, limit, offset, func(a store.CreditAccount) gin.H {
		return gin.H{"account_id": a.ID, "subject_type": a.SubjectType, "subject_id": a.SubjectID,
			"balance_usd": billing.FormatPico(a.BalancePicoUSD), "updated_at": a.UpdatedAt}
	})
}

// creditBalance is GET /admin/credits/{type}/{id}: the account, a page of its ledger (limit,
// offset, period as for its entries) and the totals of each period.
func (s *Server) creditBalance(c *gin.Context) {
	if _, _, ok := creditSubject(c); !ok {
		return
	}
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	period, since, ok := periodParam(c, time.Now())
	if !ok {
		return
	}
	if a, ok := s.pathAccount(c); ok {
		s.writeAccount(c, a, accountPage{limit: limit, offset: offset, period: period, since: since})
	}
}

// pathAccount is the credit account the path names, if the caller may see it; otherwise it has
// answered the error (404 account_not_found when there is none).
func (s *Server) pathAccount(c *gin.Context) (store.CreditAccount, bool) {
	typ, id, ok := creditSubject(c)
	if !ok || !s.subjectInScope(c, typ, id, "subjectId") {
		return store.CreditAccount{}, false
	}
	a, err := s.d.Store.CreditAccountOf(c.Request.Context(), string(typ), id)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, api.TypeNotFound, "account_not_found", "subjectId", "No credit account for that subject.")
		return a, false
	}
	if err != nil {
		s.internal(c, err)
		return a, false
	}
	return a, true
}

// creditBody is the body of top-up and adjust: an exact USD amount and a note.
type creditBody struct {
	AmountUSD *usd   `json:"amount_usd"`
	Note      string `json:"note"`
}

func (s *Server) creditTopUp(c *gin.Context)  { s.moveCredit(c, "grant") }
func (s *Server) creditAdjust(c *gin.Context) { s.moveCredit(c, "adjust") }

// moveCredit creates the account if needed and appends a grant (positive amounts only) or an
// adjustment (either sign). The subject must exist unless the query allows an unknown one.
func (s *Server) moveCredit(c *gin.Context, kind string) {
	typ, id, ok := creditSubject(c)
	if !ok {
		return
	}
	var b creditBody
	if !decode(c, &b) {
		return
	}
	if b.AmountUSD == nil {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "missing_field", "amount_usd", "amount_usd: required.")
		return
	}
	str := string(*b.AmountUSD)
	neg := strings.HasPrefix(str, "-")
	micro, err := billing.ParseUSD(strings.TrimPrefix(str, "-"))
	if err != nil || micro <= 0 || (neg && kind == "grant") {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "amount_usd", "amount_usd: a non-zero decimal USD amount with at most 6 decimal places (positive for a top-up).")
		return
	}
	amount := new(big.Int).Mul(big.NewInt(micro), big.NewInt(1_000_000)) // micro → pico
	if neg {
		amount.Neg(amount)
	}
	if _, _, ok := s.knownSubject(c, typ, id, "subjectId"); !ok {
		return
	}
	ctx := c.Request.Context()
	a, err := s.d.Store.EnsureCreditAccount(ctx, string(typ), id)
	if err != nil {
		s.internal(c, err)
		return
	}
	e, err := s.d.Store.AddCredit(ctx, a.ID, kind, amount, b.Note)
	if err != nil {
		s.internal(c, err)
		return
	}
	now, err := s.d.Store.CreditAccountOf(ctx, string(typ), id)
	if err != nil {
		s.internal(c, err)
		return
	}
	tenant, _ := s.subjectTenant(ctx, typ, id)
	s.audit(c, "credit."+kind, string(typ)+"/"+id, tenant, gin.H{"balance_usd": billing.FormatPico(a.BalancePicoUSD)},
		gin.H{"entry_id": e.ID, "kind": e.Kind, "amount_usd": billing.FormatPico(e.AmountPicoUSD), "note": e.Note,
			"balance_usd": billing.FormatPico(now.BalancePicoUSD)})
	if s.d.Credits != nil {
		if err := s.d.Credits.CreditsChanged(ctx, typ, id); err != nil {
			s.d.Log.Warn("could not announce a credit change: other replicas lift the block when their snapshot expires", "err", err)
		}
	}
	entries, err := s.d.Store.CreditEntries(ctx, now.ID, 100, 0)
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, accountView(now, entries))
}

// modelParam is the model of a /pricing/*model route, without the catch-all's leading "/".
func modelParam(c *gin.Context) string { return strings.TrimPrefix(c.Param("model"), "/") }
