package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/llmgate/llmgate/store"
)

const priceColumns = `model, input_per_million, output_per_million, cached_input_per_million,
	reasoning_per_million, effective_from, version, image_prices, audio_second,
	characters_per_million, request_price, cache_write_per_million`

// PutPrice adds a price version. Versions are never replaced: a past record's cost must stay
// explainable by the price it was costed with, so a second version at the same (model,
// effective_from) is ErrConflict, not an update.
func (s *Store) PutPrice(ctx context.Context, p store.ModelPrice) error {
	if err := store.ValidPrice(p); err != nil {
		return fmt.Errorf("postgres: put price: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO model_pricing (`+priceColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		p.Model, p.InputPerM, p.OutputPerM, p.CachedInputPerM, p.ReasoningPerM, p.EffectiveFrom, p.Version,
		store.EncodeImagePrices(p.ImagePrices), p.AudioSecond, p.CharactersPerM, p.Request, p.CacheWritePerM)
	if err != nil {
		return fmt.Errorf("postgres: put price: %w", mapErr(err))
	}
	return nil
}

// Prices returns, per model, the version with the latest effective_from not after at, ordered by
// model in byte order (as SQLite does, whatever the database's collation).
func (s *Store) Prices(ctx context.Context, at time.Time) ([]store.ModelPrice, error) {
	ps, err := s.queryPrices(ctx, `SELECT `+priceColumns+` FROM (
			SELECT DISTINCT ON (model) `+priceColumns+` FROM model_pricing
			WHERE effective_from <= $1 ORDER BY model, effective_from DESC
		) p ORDER BY model COLLATE "C"`, at)
	if err != nil {
		return nil, fmt.Errorf("postgres: prices: %w", err)
	}
	return ps, nil
}

// PriceHistory returns a model's versions, newest first.
func (s *Store) PriceHistory(ctx context.Context, model string) ([]store.ModelPrice, error) {
	ps, err := s.queryPrices(ctx, `SELECT `+priceColumns+` FROM model_pricing
		WHERE model = $1 ORDER BY effective_from DESC`, model)
	if err != nil {
		return nil, fmt.Errorf("postgres: price history: %w", err)
	}
	return ps, nil
}

func (s *Store) queryPrices(ctx context.Context, q string, args ...any) ([]store.ModelPrice, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ModelPrice, error) {
		var p store.ModelPrice
		var images *string
		err := row.Scan(&p.Model, &p.InputPerM, &p.OutputPerM, &p.CachedInputPerM,
			&p.ReasoningPerM, &p.EffectiveFrom, &p.Version, &images, &p.AudioSecond, &p.CharactersPerM, &p.Request,
			&p.CacheWritePerM)
		p.EffectiveFrom = p.EffectiveFrom.UTC()
		if err == nil {
			p.ImagePrices, err = store.DecodeImagePrices(images)
		}
		return p, err
	})
}

// defaultBillingLimit is the page size of BillingRecords when the filter sets none.
const defaultBillingLimit = 1000

// BillingRecords returns rollup rows ordered by day, then tenant, user, key and model in byte
// order. From and To select days: a row is returned when From's UTC day ≤ its day < To's UTC day.
func (s *Store) BillingRecords(ctx context.Context, f store.BillingFilter) ([]store.DailyUsage, error) {
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
		w.add("day >= ", pgtype.Date{Time: utcDay(f.From), Valid: true})
	}
	if !f.To.IsZero() {
		w.add("day < ", pgtype.Date{Time: utcDay(f.To), Valid: true})
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultBillingLimit
	}
	q := `SELECT day, tenant_id, user_id, key_id, model, requests, prompt_tokens, completion_tokens,
		cached_tokens, reasoning_tokens, cost_pico_usd, priced, cache_write_tokens FROM billing_record` + w.sql() +
		` ORDER BY day, tenant_id COLLATE "C", user_id COLLATE "C", key_id COLLATE "C",
		model COLLATE "C", priced DESC` + w.page(limit, max(f.Offset, 0))
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: billing records: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DailyUsage, error) {
		var d store.DailyUsage
		var day pgtype.Date
		var cost pgtype.Numeric
		var priced bool
		if err := row.Scan(&day, &d.TenantID, &d.UserID, &d.KeyID, &d.Model, &d.Requests,
			&d.PromptTokens, &d.CompletionTokens, &d.CachedTokens, &d.ReasoningTokens, &cost,
			&priced, &d.CacheWriteTokens); err != nil {
			return d, err
		}
		d.Day = utcDay(day.Time)
		if !priced { // the unpriced row's cost is unknown, not its stored 0
			return d, nil
		}
		var err error
		d.CostPicoUSD, err = numericToBig(cost)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: billing records: %w", err)
	}
	return out, nil
}

// utcDay is midnight UTC of t's UTC day: rollups count a record on the UTC day it started.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Spend sums the subject's rollups over the calendar month of f.Day and over f.Day, in one
// indexed range scan (billing_record is indexed by user, key and tenant, each with the day).
func (s *Store) Spend(ctx context.Context, f store.SpendFilter) (month, day *big.Int, err error) {
	col, err := store.SpendColumn(f.SubjectType)
	if err == nil && f.SubjectID == "" {
		err = errors.New("no subject id")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: spend: %w", err)
	}
	d := f.Day.UTC()
	first := time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
	today := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	var m, dd pgtype.Numeric
	err = s.pool.QueryRow(ctx, `SELECT COALESCE(sum(cost_pico_usd), 0),
			COALESCE(sum(cost_pico_usd) FILTER (WHERE day = $3::date), 0)
		FROM billing_record WHERE `+col+` = $1 AND ($4 = '' OR model = $4)
			AND day >= $2::date AND day <= $3::date`,
		f.SubjectID, first, today, f.Model).Scan(&m, &dd)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: spend of %s %q: %w", f.SubjectType, f.SubjectID, err)
	}
	if month, err = numericToBig(m); err != nil {
		return nil, nil, fmt.Errorf("postgres: spend: %w", err)
	}
	if day, err = numericToBig(dd); err != nil {
		return nil, nil, fmt.Errorf("postgres: spend: %w", err)
	}
	return month, day, nil
}
