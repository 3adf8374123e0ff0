package sqlite

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/llmgate/llmgate/store"
)

// statsBuckets are the bucket expressions of UsageStats with the layout that parses them back:
// started_at holds microseconds since the epoch, which strftime reads as seconds.
var statsBuckets = map[string]struct{ expr, layout string }{
	"":                {"''", ""},
	store.BucketHour:  {"strftime('%Y-%m-%dT%H', started_at / 1000000, 'unixepoch')", "2006-01-02T15"},
	store.BucketDay:   {"strftime('%Y-%m-%d', started_at / 1000000, 'unixepoch')", "2006-01-02"},
	store.BucketMonth: {"strftime('%Y-%m', started_at / 1000000, 'unixepoch')", "2006-01"},
}

// statsGroups are the columns of UsageStatsFilter.GroupBy.
var statsGroups = map[string]string{"": "''", store.GroupModel: "model", store.GroupUser: "user_id",
	store.GroupTenant: "tenant_id", store.GroupKey: "key_id"}

// UsageStats sums usage records in SQL. Costs are summed as int64, the store's documented limit
// for money sums: a sum beyond it is an error, never a wrapped number.
func (s *Store) UsageStats(ctx context.Context, f store.UsageStatsFilter) ([]store.UsageStat, error) {
	bucket, ok := statsBuckets[f.Bucket]
	if !ok {
		return nil, fmt.Errorf("sqlite: usage stats: unknown bucket %q", f.Bucket)
	}
	group, ok := statsGroups[f.GroupBy]
	if !ok {
		return nil, fmt.Errorf("sqlite: usage stats: unknown group %q", f.GroupBy)
	}
	var where []string
	var args []any
	eq := func(col string, v any) {
		where, args = append(where, col+" = ?"), append(args, v)
	}
	if f.TenantID != "" {
		eq("tenant_id", f.TenantID)
	}
	if f.UserID != "" {
		eq("user_id", f.UserID)
	}
	if f.KeyID != "" {
		eq("key_id", f.KeyID)
	}
	if f.Model != "" {
		eq("model", f.Model)
	}
	if !f.From.IsZero() {
		where, args = append(where, "started_at >= ?"), append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "started_at < ?"), append(args, micros(f.To))
	}
	q := `SELECT ` + bucket.expr + ` AS b, ` + group + ` AS g, COUNT(*),
		SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 429 THEN 1 ELSE 0 END),
		SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(reasoning_tokens),
		COALESCE(SUM(cost_pico_usd), 0) AS cost FROM usage_records`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` GROUP BY b, g ORDER BY b, cost DESC, COUNT(*) DESC, g`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: usage stats: %w", err)
	}
	defer rows.Close()
	var out []store.UsageStat
	for rows.Next() {
		var st store.UsageStat
		var b string
		var cost int64
		if err := rows.Scan(&b, &st.Group, &st.Requests, &st.Errors, &st.RateLimited, &st.PromptTokens,
			&st.CompletionTokens, &st.CachedTokens, &st.ReasoningTokens, &cost); err != nil {
			return nil, fmt.Errorf("sqlite: usage stats: %w", err)
		}
		if bucket.layout != "" {
			if st.Bucket, err = time.Parse(bucket.layout, b); err != nil {
				return nil, fmt.Errorf("sqlite: usage stats: bucket %q: %w", b, err)
			}
		}
		st.CostPicoUSD = big.NewInt(cost)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: usage stats: %w", err)
	}
	return out, nil
}
