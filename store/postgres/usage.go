package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

var usageColumns = []string{
	"request_id", "client_request_id", "trace_id", "key_id", "user_id", "tenant_id", "session_id",
	"model", "upstream_model", "provider", "deployment", "endpoint", "stream", "status", "error_type",
	"prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "usage_source",
	"cost_pico_usd", "price_version", "latency_ms", "ttft_ms", "started_at", "ended_at",
}

const usageColumnList = `request_id, client_request_id, trace_id, key_id, user_id, tenant_id,
	session_id, model, upstream_model, provider, deployment, endpoint, stream, status, error_type,
	prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, usage_source,
	cost_pico_usd, price_version, latency_ms, ttft_ms, started_at, ended_at`

// InsertUsage COPYs the batch into a temporary table, then moves it into usage_records with
// INSERT … ON CONFLICT DO NOTHING, all in one transaction: COPY is the fast path but cannot skip
// duplicates itself, and the INSERT's row count is exactly the number of new records.
func (s *Store) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	var inserted int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`CREATE TEMP TABLE usage_in (LIKE usage_records INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("create temp table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_in"}, usageColumns,
			pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
				r := &recs[i]
				return []any{
					r.RequestID, r.ClientRequestID, r.TraceID, r.KeyID, r.UserID, r.TenantID,
					r.SessionID, r.Model, r.UpstreamModel, r.Provider, r.Deployment, r.Endpoint,
					r.Stream, int32(r.Status), r.ErrorType, r.PromptTokens, r.CompletionTokens,
					r.CachedTokens, r.ReasoningTokens, r.UsageSource, r.CostPicoUSD, r.PriceVersion,
					r.LatencyMS, r.TTFTMS, r.StartedAt, r.EndedAt,
				}, nil
			})); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO usage_records (`+usageColumnList+`)
			SELECT `+usageColumnList+` FROM usage_in ON CONFLICT DO NOTHING`)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		inserted = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: insert usage: %w", err)
	}
	return int(inserted), nil
}

// ListUsage returns records newest first; every filter value is a bound parameter.
func (s *Store) ListUsage(ctx context.Context, f store.UsageFilter) ([]store.UsageRecord, error) {
	var w where
	if f.UserID != "" {
		w.add("user_id = ", f.UserID)
	}
	if f.KeyID != "" {
		w.add("key_id = ", f.KeyID)
	}
	if f.TenantID != "" {
		w.add("tenant_id = ", f.TenantID)
	}
	if f.Model != "" {
		w.add("model = ", f.Model)
	}
	if f.Status != 0 {
		w.add("status = ", f.Status)
	}
	if f.TraceID != "" {
		w.add("trace_id = ", f.TraceID)
	}
	if f.ClientRequestID != "" {
		w.add("client_request_id = ", f.ClientRequestID)
	}
	if !f.From.IsZero() {
		w.add("started_at >= ", f.From)
	}
	if !f.To.IsZero() {
		w.add("started_at < ", f.To)
	}
	limit, offset := page(f.Limit, f.Offset)
	q := `SELECT ` + usageColumnList + ` FROM usage_records` + w.sql() +
		` ORDER BY started_at DESC, request_id DESC` + w.page(limit, offset)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list usage: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.UsageRecord, error) {
		var r store.UsageRecord
		var status int32
		err := row.Scan(&r.RequestID, &r.ClientRequestID, &r.TraceID, &r.KeyID, &r.UserID,
			&r.TenantID, &r.SessionID, &r.Model, &r.UpstreamModel, &r.Provider, &r.Deployment,
			&r.Endpoint, &r.Stream, &status, &r.ErrorType, &r.PromptTokens, &r.CompletionTokens,
			&r.CachedTokens, &r.ReasoningTokens, &r.UsageSource, &r.CostPicoUSD, &r.PriceVersion,
			&r.LatencyMS, &r.TTFTMS, &r.StartedAt, &r.EndedAt)
		r.Status, r.StartedAt, r.EndedAt = int(status), r.StartedAt.UTC(), r.EndedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list usage: %w", err)
	}
	return recs, nil
}
