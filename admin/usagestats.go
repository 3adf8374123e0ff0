package admin

import (
	"math/big"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/store"
)

// The usage statistics: sums of the usage records over time and by who spent, for dashboards
// (the console's overview). Unlike the billing summary, which reads the daily rollups of what
// reached a model, they count every record, refusals and errors included, and go down to the hour.

func (s *Server) routeUsageStats(a *gin.RouterGroup) {
	s.handle(a, http.MethodGet, "/usage/series", read(areaBilling), s.usageSeries)
	s.handle(a, http.MethodGet, "/usage/top", read(areaBilling), s.usageTop)
}

// maxSeriesBuckets bounds a series: 1000 hours is six weeks, 1000 days nearly three years.
const maxSeriesBuckets = 1000

// seriesSpan is each bucket's default number of buckets: a day of hours, a month of days, a year
// of months.
var seriesSpan = map[string]int{store.BucketHour: 24, store.BucketDay: 30, store.BucketMonth: 12}

// bucketStart is the start of the UTC bucket t falls in.
func bucketStart(bucket string, t time.Time) time.Time {
	t = t.UTC()
	switch bucket {
	case store.BucketHour:
		return t.Truncate(time.Hour)
	case store.BucketDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// nextBucket is the start of the bucket after the one starting at t.
func nextBucket(bucket string, t time.Time) time.Time {
	switch bucket {
	case store.BucketHour:
		return t.Add(time.Hour)
	case store.BucketDay:
		return t.AddDate(0, 0, 1)
	}
	return t.AddDate(0, 1, 0)
}

// statsFilter reads the filters both endpoints share: tenant_id (a tenant-scoped token's own
// tenant whatever it asks), user_id, key_id, model, and from/to with the defaults given (the
// caller's span ending now). A bad one is answered here.
func statsFilter(c *gin.Context, defaultFrom func(to time.Time) time.Time) (store.UsageStatsFilter, bool) {
	f := store.UsageStatsFilter{UserID: c.Query("user_id"), KeyID: c.Query("key_id"), Model: c.Query("model")}
	var ok bool
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return f, false
	}
	if f.From, ok = timeParam(c, "from"); !ok {
		return f, false
	}
	if f.To, ok = timeParam(c, "to"); !ok {
		return f, false
	}
	if f.To.IsZero() {
		f.To = time.Now().UTC()
	}
	if f.From.IsZero() {
		f.From = defaultFrom(f.To)
	}
	if !f.From.Before(f.To) {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "from", "from: must be before to.")
		return f, false
	}
	return f, true
}

// statView is the sums of one bucket or group, cost in decimal USD.
func statView(st store.UsageStat, h gin.H) gin.H {
	cost := st.CostPicoUSD
	if cost == nil {
		cost = new(big.Int)
	}
	h["requests"], h["errors"], h["rate_limited"] = st.Requests, st.Errors, st.RateLimited
	h["prompt_tokens"], h["completion_tokens"] = st.PromptTokens, st.CompletionTokens
	h["cached_tokens"], h["reasoning_tokens"] = st.CachedTokens, st.ReasoningTokens
	h["cost_usd"] = billing.FormatPico(cost)
	return h
}

// usageSeries is GET /admin/usage/series: the sums of each UTC hour, day or month from from to
// to, every bucket present (zeros where nothing happened), oldest first, with their total. from
// and to are widened to whole buckets.
func (s *Server) usageSeries(c *gin.Context) {
	bucket := c.DefaultQuery("bucket", store.BucketHour)
	span, ok := seriesSpan[bucket]
	if !ok {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "bucket", "bucket: want hour, day or month.")
		return
	}
	f, ok := statsFilter(c, func(to time.Time) time.Time {
		from := bucketStart(bucket, to)
		for i := 1; i < span; i++ {
			from = bucketStart(bucket, from.Add(-time.Nanosecond))
		}
		return from
	})
	if !ok {
		return
	}
	f.Bucket = bucket
	f.From = bucketStart(bucket, f.From)
	if end := bucketStart(bucket, f.To); end.Before(f.To) {
		f.To = nextBucket(bucket, end)
	}
	var starts []time.Time
	for b := f.From; b.Before(f.To); b = nextBucket(bucket, b) {
		if len(starts) == maxSeriesBuckets {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "from",
				"from: the range holds more than "+strconv.Itoa(maxSeriesBuckets)+" buckets; narrow it or use a larger bucket.")
			return
		}
		starts = append(starts, b)
	}
	stats, err := s.d.Store.UsageStats(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	total := store.UsageStat{CostPicoUSD: new(big.Int)}
	byStart := make(map[time.Time]store.UsageStat, len(stats))
	for _, st := range stats {
		byStart[st.Bucket] = st
		total.Requests += st.Requests
		total.Errors += st.Errors
		total.RateLimited += st.RateLimited
		total.PromptTokens += st.PromptTokens
		total.CompletionTokens += st.CompletionTokens
		total.CachedTokens += st.CachedTokens
		total.ReasoningTokens += st.ReasoningTokens
		total.CostPicoUSD.Add(total.CostPicoUSD, st.CostPicoUSD)
	}
	out := make([]gin.H, 0, len(starts))
	for _, b := range starts {
		out = append(out, statView(byStart[b], gin.H{"start": b}))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "bucket": bucket, "from": f.From, "to": f.To,
		"data": out, "total": statView(total, gin.H{})})
}

// topDimensions are the values of GET /admin/usage/top's "by".
var topDimensions = map[string]bool{store.GroupUser: true, store.GroupTenant: true, store.GroupModel: true, store.GroupKey: true}

// usageTop is GET /admin/usage/top: the users, tenants, models or keys that spent most from from
// to to (default: the last 30 days), biggest first.
func (s *Server) usageTop(c *gin.Context) {
	by := c.DefaultQuery("by", store.GroupUser)
	if !topDimensions[by] {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "by", "by: want user, tenant, model or key.")
		return
	}
	limit, ok := intParam(c, "limit", 10, 1, 100)
	if !ok {
		return
	}
	f, ok := statsFilter(c, func(to time.Time) time.Time { return to.AddDate(0, 0, -30) })
	if !ok {
		return
	}
	f.GroupBy, f.Limit = by, limit
	stats, err := s.d.Store.UsageStats(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := make([]gin.H, 0, len(stats))
	for _, st := range stats {
		out = append(out, statView(st, gin.H{"id": st.Group}))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "by": by, "from": f.From, "to": f.To, "data": out})
}
