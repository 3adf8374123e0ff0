package sqlite

import (
	"context"
	"fmt"
	"math/big"

	"github.com/llmgate/llmgate/store"
)

// Experiments returns every experiment by id, in byte order.
func (s *Store) Experiments(ctx context.Context) ([]store.Experiment, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, model, state, salt, spec, created_at, updated_by, updated_at
		FROM experiments ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: experiments: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.Experiment, error) {
		var e store.Experiment
		var spec string
		var created, updated int64
		if err := row.Scan(&e.ID, &e.Model, &e.State, &e.Salt, &spec, &created, &e.UpdatedBy, &updated); err != nil {
			return store.Experiment{}, err
		}
		e.Spec, e.CreatedAt, e.UpdatedAt = []byte(spec), fromMicros(created), fromMicros(updated)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: experiments: %w", err)
	}
	return out, nil
}

// CreateExperiment inserts one; ErrConflict when the id exists.
func (s *Store) CreateExperiment(ctx context.Context, e store.Experiment) error {
	if err := store.ValidExperiment(e); err != nil {
		return fmt.Errorf("sqlite: create experiment: %w", err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO experiments (id, model, state, salt, spec, created_at, updated_by, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Model, e.State, e.Salt, string(e.Spec), micros(e.CreatedAt), e.UpdatedBy, micros(e.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create experiment %q: %w", e.ID, mapErr(err))
	}
	return nil
}

// UpdateExperiment replaces the state, spec and update stamp; ErrNotFound when none.
func (s *Store) UpdateExperiment(ctx context.Context, e store.Experiment) error {
	if err := store.ValidExperiment(e); err != nil {
		return fmt.Errorf("sqlite: update experiment: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE experiments SET state = ?, spec = ?, updated_by = ?, updated_at = ? WHERE id = ?`,
		e.State, string(e.Spec), e.UpdatedBy, micros(e.UpdatedAt), e.ID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: update experiment %q: %w", e.ID, err)
	}
	return nil
}

// experimentTotalsSQL counts an experiment's records by variant.
const experimentTotalsSQL = `SELECT variant, count(*), count(*) FILTER (WHERE status >= 400),
	COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0),
	count(cost_pico_usd), COALESCE(sum(cost_pico_usd), 0)
	FROM usage_records WHERE experiment = ? GROUP BY variant ORDER BY variant`

// ExperimentResults adds up an experiment's records by variant: the totals, then each
// percentile measure (store.ExperimentPercentileSQL, shared with PostgreSQL).
func (s *Store) ExperimentResults(ctx context.Context, id string) ([]store.VariantResult, error) {
	rows, err := s.r.QueryContext(ctx, experimentTotalsSQL, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: experiment results: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.VariantResult, error) {
		var v store.VariantResult
		var cost *big.Int
		err := row.Scan(&v.Variant, &v.Requests, &v.Errors, &v.PromptTokens, &v.CompletionTokens, &v.CostSamples, scanMoney(&cost))
		v.CostPicoUSD = cost
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: experiment results: %w", err)
	}
	idx := make(map[string]int, len(out))
	for i, v := range out {
		idx[v.Variant] = i
	}
	for _, p := range store.ExperimentPercentiles {
		rows, err := s.r.QueryContext(ctx, store.ExperimentPercentileSQL(p, "?"), id)
		if err != nil {
			return nil, fmt.Errorf("sqlite: experiment results: %w", err)
		}
		type pct struct {
			name        string
			n, p50, p95 int64
		}
		got, err := collect(rows, func(row scanner) (pct, error) {
			var x pct
			err := row.Scan(&x.name, &x.n, &x.p50, &x.p95)
			return x, err
		})
		if err != nil {
			return nil, fmt.Errorf("sqlite: experiment results: %w", err)
		}
		for _, x := range got {
			if i, ok := idx[x.name]; ok {
				p.Set(&out[i], x.n, x.p50, x.p95)
			}
		}
	}
	if out == nil {
		out = []store.VariantResult{}
	}
	return out, nil
}
