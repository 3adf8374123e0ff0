package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/llmgate/llmgate/store"
)

// statsBuckets are the bucket expressions of UsageStats: the UTC wall clock truncated, so a day
// or a month is the same in every session time zone.
var statsBuckets = map[string]string{
	"":                "timestamp '1970-01-01'",
	store.BucketHour:  "date_trunc('hour', started_at AT TIME ZONE 'UTC')",
	store.BucketDay:   "date_trunc('day', started_at AT TIME ZONE 'UTC')",
	store.BucketMonth: "date_trunc('month', started_at AT TIME ZONE 'UTC')",
}

// statsGroups are the columns of UsageStatsFilter.GroupBy.
var statsGroups = map[string]string{"": "''", store.GroupModel: "model", store.GroupUser: "user_id",
	store.GroupTenant: "tenant_id", store.GroupKey: "key_id"}

// UsageStats sums usage records in SQL; the cost sums are NUMERIC, exact however large.
func (s *Store) UsageStats(ctx context.Context, f store.UsageStatsFilter) ([]store.UsageStat, error) {
	bucket, ok := statsBuckets[f.Bucket]
	if !ok {
		return nil, fmt.Errorf("postgres: usage stats: unknown bucket %q", f.Bucket)
	}
	group, ok := statsGroups[f.GroupBy]
	if !ok {
		return nil, fmt.Errorf("postgres: usage stats: unknown group %q", f.GroupBy)
	}
	var w where
	if f.TenantID != "" {
		w.add("tenant_id = ", f.TenantID)
	}
	if f.UserID != "" {
		w.add("user_id = ", f.UserID)
	}
	if f.KeyID != "" {
		w.add("key_id = ", f.KeyID)
	}
	if f.Model != "" {
		w.add("model = ", f.Model)
	}
	if !f.From.IsZero() {
		w.add("started_at >= ", f.From)
	}
	if !f.To.IsZero() {
		w.add("started_at < ", f.To)
	}
	q := `SELECT ` + bucket + ` AS b, ` + group + ` AS g, COUNT(*),
		COUNT(*) FILTER (WHERE status >= 400), COUNT(*) FILTER (WHERE status = 429),
		SUM(prompt_tokens)::bigint, SUM(completion_tokens)::bigint, SUM(cached_tokens)::bigint,
		SUM(reasoning_tokens)::bigint, COALESCE(SUM(cost_pico_usd), 0) AS cost
		FROM usage_records` + w.sql() + ` GROUP BY b, g ORDER BY b, cost DESC, COUNT(*) DESC, g`
	if f.Limit > 0 {
		q += ` LIMIT ` + w.arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: usage stats: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.UsageStat, error) {
		var st store.UsageStat
		var cost pgtype.Numeric
		err := row.Scan(&st.Bucket, &st.Group, &st.Requests, &st.Errors, &st.RateLimited, &st.PromptTokens,
			&st.CompletionTokens, &st.CachedTokens, &st.ReasoningTokens, &cost)
		if err != nil {
			return st, err
		}
		if f.Bucket == "" {
			st.Bucket = time.Time{}
		} else {
			st.Bucket = st.Bucket.UTC()
		}
		st.CostPicoUSD, err = numericToBig(cost)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: usage stats: %w", err)
	}
	return out, nil
}
