package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

var usageColumns = []string{
	"request_id", "client_request_id", "trace_id", "key_id", "user_id", "tenant_id", "session_id",
	"model", "upstream_model", "provider", "deployment", "endpoint", "stream", "status", "error_type",
	"prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "usage_source",
	"cost_pico_usd", "price_version", "latency_ms", "ttft_ms", "started_at", "ended_at",
	"units", "unit", "served_model", "replay_of", "experiment", "variant", "cache_write_tokens",
}

const usageColumnList = `request_id, client_request_id, trace_id, key_id, user_id, tenant_id,
	session_id, model, upstream_model, provider, deployment, endpoint, stream, status, error_type,
	prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, usage_source,
	cost_pico_usd, price_version, latency_ms, ttft_ms, started_at, ended_at, units, unit,
	served_model, replay_of, experiment, variant, cache_write_tokens`

// InsertUsage COPYs the batch into a temporary table, then runs insertUsageSQL, all in one
// transaction: COPY is the fast path but cannot skip duplicates itself, so the INSERT … ON
// CONFLICT DO NOTHING that moves the rows into usage_records decides which are new, and its
// RETURNING feeds the daily rollups and the credit charges in the same statement. A replayed
// batch returns no rows there, so it can neither count nor charge twice, and the transaction
// makes the records, their rollups and their charges visible together or not at all.
func (s *Store) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	var inserted int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createUsageInSQL); err != nil {
			return fmt.Errorf("create temp table: %w", err)
		}
		if err := copyUsage(ctx, tx, recs); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if err := tx.QueryRow(ctx, insertUsageSQL[chargeMode(recs)]).Scan(&inserted); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: insert usage: %w", err)
	}
	return int(inserted), nil
}

var usageInColumns = append(slices.Clip(usageColumns), "charge", "payer_type", "payer_id")

// createUsageInSQL makes the batch's temporary table once per connection: it lives as long as the
// session, and every commit empties it (a rollback discards the rows it was given). Made and
// dropped with each batch instead, it cost a few milliseconds a batch in catalog writes, and left
// the system catalogs to vacuum. Its columns are fixed when a connection first makes it, which is
// safe because COPY and insertUsageSQL name the columns they use. charge, payer_type and payer_id
// are the inputs that are not usage_records columns: whether this record is charged to a credit
// account, and whose (as billing decided), read only for new records.
const createUsageInSQL = `CREATE TEMP TABLE IF NOT EXISTS usage_in (LIKE usage_records
	INCLUDING DEFAULTS, charge boolean NOT NULL DEFAULT false, payer_type text NOT NULL DEFAULT '',
	payer_id text NOT NULL DEFAULT '') ON COMMIT DELETE ROWS`

// insertUsageSQL moves usage_in into usage_records and, for the rows that were new only (the
// RETURNING of the ON CONFLICT DO NOTHING insert):
//
//   - rollup adds them to their billing_record rows (UTC day of started_at), sums in NUMERIC,
//     those that reached a model only (a deployment named, as store.UsageRecord.ReachedModel);
//     records without a cost go to the group's unpriced row (priced = false), so their usage is
//     never summed as $0;
//   - charge appends a 'charge' ledger entry of −cost for each new record marked charge that has
//     a cost, to the credit account of the payer the record names; the partial unique index
//     on request_id makes a charge that already exists a no-op, so a request is charged once
//     even if it is recorded again under another started_at;
//   - balance lowers each charged account by the sum of the entries actually appended, and
//     raises its running total of charges by as much.
//
// Every stage takes its row locks in one global order (usage keys, rollup keys, ledger request
// ids, account ids, each sorted, each stage consuming its sorted input before writing), so
// concurrent batches that overlap wait for each other instead of deadlocking; the ledger's check
// that its entries' accounts exist (migration 0003) is one query at the end of the statement and
// locks no row. The balance is an upsert that always conflicts (the accounts were just read)
// because INSERT … SELECT … ORDER BY is the one data-modifying form that processes its rows in a
// given order; UPDATE … FROM does not. Data-modifying CTEs run exactly once, whatever the outer
// query reads of them.
//
// The statement comes in two variants, by chargeMode: a batch with nothing to charge skips the
// charge stages.
var insertUsageSQL = [...]string{
	chargeNone: insertNewSQL + rollupSQL + selectNewSQL,
	chargeSome: insertNewSQL + rollupSQL + chargeSQL + selectNewSQL,
}

const (
	chargeNone = iota
	chargeSome
)

// chargeMode says whether any record of a batch is to be charged to an account.
func chargeMode(recs []store.UsageRecord) int {
	for i := range recs {
		if recs[i].Charge && recs[i].PayerType != "" {
			return chargeSome
		}
	}
	return chargeNone
}

const insertNewSQL = `WITH new AS (
	INSERT INTO usage_records (` + usageColumnList + `)
	SELECT ` + usageColumnList + ` FROM usage_in ORDER BY request_id, started_at
	ON CONFLICT DO NOTHING
	RETURNING request_id, started_at, tenant_id, user_id, key_id, model, deployment, prompt_tokens,
		completion_tokens, cached_tokens, reasoning_tokens, cost_pico_usd, cache_write_tokens
)`

const rollupSQL = `, rollup AS (
	INSERT INTO billing_record AS b (day, tenant_id, user_id, key_id, model, priced, requests,
		prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_pico_usd,
		cache_write_tokens)
	SELECT (started_at AT TIME ZONE 'UTC')::date, tenant_id, user_id, key_id, model,
		cost_pico_usd IS NOT NULL, count(*), sum(prompt_tokens), sum(completion_tokens),
		sum(cached_tokens), sum(reasoning_tokens), COALESCE(sum(cost_pico_usd), 0),
		sum(cache_write_tokens)
	FROM new WHERE deployment <> '' GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
	ON CONFLICT (day, tenant_id, user_id, key_id, model, priced) DO UPDATE SET
		requests = b.requests + EXCLUDED.requests,
		prompt_tokens = b.prompt_tokens + EXCLUDED.prompt_tokens,
		completion_tokens = b.completion_tokens + EXCLUDED.completion_tokens,
		cached_tokens = b.cached_tokens + EXCLUDED.cached_tokens,
		reasoning_tokens = b.reasoning_tokens + EXCLUDED.reasoning_tokens,
		cost_pico_usd = b.cost_pico_usd + EXCLUDED.cost_pico_usd,
		cache_write_tokens = b.cache_write_tokens + EXCLUDED.cache_write_tokens
)`

// chargeSQL is the payer, charge and balance stages. payer resolves each account a batch charges
// once, from the distinct payers of its records (tens or hundreds of accounts, where looking the
// account up for every record took thousands of index probes a batch). charge reads the payer of
// a new record from its row in usage_in; a batch may hold a record twice, and then both rows join
// to it and the ledger's ON CONFLICT DO NOTHING keeps the first entry alone, as it does for an
// entry of the same request appended earlier.
const chargeSQL = `, payer AS (
	SELECT a.id, a.subject_type, a.subject_id FROM credit_accounts a
	WHERE (a.subject_type, a.subject_id) IN
		(SELECT payer_type, payer_id FROM usage_in WHERE charge AND payer_type <> '')
), charge AS (
	INSERT INTO credit_ledger (account_id, kind, amount_pico_usd, request_id)
	SELECT p.id, 'charge', -n.cost_pico_usd::numeric, n.request_id
	FROM new n
	JOIN usage_in i ON i.request_id = n.request_id AND i.started_at = n.started_at
	JOIN payer p ON p.subject_type = i.payer_type AND p.subject_id = i.payer_id
	WHERE i.charge AND n.cost_pico_usd IS NOT NULL
	ORDER BY n.request_id
	ON CONFLICT (request_id) WHERE kind = 'charge' DO NOTHING
	RETURNING account_id, amount_pico_usd
), balance AS (
	INSERT INTO credit_accounts AS a (id, subject_type, subject_id, balance_pico_usd)
	SELECT p.id, p.subject_type, p.subject_id, c.total
	FROM (SELECT account_id, sum(amount_pico_usd) AS total FROM charge GROUP BY account_id) c
	JOIN payer p ON p.id = c.account_id
	ORDER BY p.id
	ON CONFLICT (id) DO UPDATE SET balance_pico_usd = a.balance_pico_usd + EXCLUDED.balance_pico_usd,
		charged_pico_usd = a.charged_pico_usd - EXCLUDED.balance_pico_usd, updated_at = now()
)`

const selectNewSQL = `
SELECT count(*) FROM new`

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
	if f.After != nil {
		// started_at <= alone lets the started_at index bound the scan; the row comparison breaks
		// ties.
		at := w.arg(f.After.StartedAt)
		w.cond("started_at <= " + at + " AND (started_at, request_id) < (" + at + ", " + w.arg(f.After.RequestID) + ")")
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
			&r.LatencyMS, &r.TTFTMS, &r.StartedAt, &r.EndedAt, &r.Units, &r.Unit, &r.ServedModel, &r.ReplayOf,
			&r.Experiment, &r.Variant, &r.CacheWriteTokens)
		r.Status, r.StartedAt, r.EndedAt = int(status), r.StartedAt.UTC(), r.EndedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list usage: %w", err)
	}
	return recs, nil
}
