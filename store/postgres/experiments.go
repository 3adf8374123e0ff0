package postgres

import (
	"context"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// Experiments returns every experiment by id, in byte order (COLLATE "C", as SQLite and Go
// compare).
func (s *Store) Experiments(ctx context.Context) ([]store.Experiment, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, model, state, salt, spec::text, created_at, updated_by, updated_at
		FROM experiments ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: experiments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Experiment, error) {
		var e store.Experiment
		var spec string
		err := row.Scan(&e.ID, &e.Model, &e.State, &e.Salt, &spec, &e.CreatedAt, &e.UpdatedBy, &e.UpdatedAt)
		e.Spec, e.CreatedAt, e.UpdatedAt = []byte(spec), e.CreatedAt.UTC(), e.UpdatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: experiments: %w", err)
	}
	return out, nil
}

// CreateExperiment inserts one; ErrConflict when the id exists.
func (s *Store) CreateExperiment(ctx context.Context, e store.Experiment) error {
	if err := store.ValidExperiment(e); err != nil {
		return fmt.Errorf("postgres: create experiment: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO experiments (id, model, state, salt, spec, created_at, updated_by, updated_at)
		VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)`,
		e.ID, e.Model, e.State, e.Salt, string(e.Spec), e.CreatedAt, e.UpdatedBy, e.UpdatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create experiment %q: %w", e.ID, mapErr(err))
	}
	return nil
}

// UpdateExperiment replaces the state, spec and update stamp; ErrNotFound when none.
func (s *Store) UpdateExperiment(ctx context.Context, e store.Experiment) error {
	if err := store.ValidExperiment(e); err != nil {
		return fmt.Errorf("postgres: update experiment: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE experiments SET state = $2, spec = $3::jsonb, updated_by = $4, updated_at = $5
		WHERE id = $1`, e.ID, e.State, string(e.Spec), e.UpdatedBy, e.UpdatedAt)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: update experiment %q: %w", e.ID, err)
	}
	return nil
}

// experimentTotalsSQL counts an experiment's records by variant; sums of bigint columns are
// numeric in PostgreSQL, so the tokens come back as bigint and the cost as text (it may pass
// int64's range).
const experimentTotalsSQL = `SELECT variant, count(*), count(*) FILTER (WHERE status >= 400),
	COALESCE(sum(prompt_tokens), 0)::bigint, COALESCE(sum(completion_tokens), 0)::bigint,
	count(cost_pico_usd), COALESCE(sum(cost_pico_usd), 0)::text
	FROM usage_records WHERE experiment = $1 GROUP BY variant ORDER BY variant COLLATE "C"`

// ExperimentResults adds up an experiment's records by variant: the totals, then each
// percentile measure (store.ExperimentPercentileSQL, shared with SQLite).
func (s *Store) ExperimentResults(ctx context.Context, id string) ([]store.VariantResult, error) {
	byName := map[string]*store.VariantResult{}
	var out []*store.VariantResult
	rows, err := s.pool.Query(ctx, experimentTotalsSQL, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: experiment results: %w", err)
	}
	for rows.Next() {
		v := &store.VariantResult{}
		var cost string
		if err := rows.Scan(&v.Variant, &v.Requests, &v.Errors, &v.PromptTokens, &v.CompletionTokens, &v.CostSamples, &cost); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: experiment results: %w", err)
		}
		var ok bool
		if v.CostPicoUSD, ok = new(big.Int).SetString(cost, 10); !ok {
			rows.Close()
			return nil, fmt.Errorf("postgres: experiment results: cost %q is not an integer", cost)
		}
		byName[v.Variant] = v
		out = append(out, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: experiment results: %w", err)
	}
	for _, p := range store.ExperimentPercentiles {
		rows, err := s.pool.Query(ctx, store.ExperimentPercentileSQL(p, "$1"), id)
		if err != nil {
			return nil, fmt.Errorf("postgres: experiment results: %w", err)
		}
		for rows.Next() {
			var name string
			var n, p50, p95 int64
			if err := rows.Scan(&name, &n, &p50, &p95); err != nil {
				rows.Close()
				return nil, fmt.Errorf("postgres: experiment results: %w", err)
			}
			if v := byName[name]; v != nil {
				p.Set(v, n, p50, p95)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("postgres: experiment results: %w", err)
		}
	}
	res := make([]store.VariantResult, 0, len(out))
	for _, v := range out {
		res = append(res, *v)
	}
	return res, nil
}
