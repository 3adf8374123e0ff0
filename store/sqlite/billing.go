package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"strings"
	"time"

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
		return fmt.Errorf("sqlite: put price: %w", err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO model_pricing (`+priceColumns+`, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.Model, p.InputPerM, p.OutputPerM, p.CachedInputPerM,
		p.ReasoningPerM, micros(p.EffectiveFrom), p.Version, store.EncodeImagePrices(p.ImagePrices), p.AudioSecond,
		p.CharactersPerM, p.Request, p.CacheWritePerM, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: put price: %w", mapErr(err))
	}
	return nil
}

// Prices returns, per model, the version with the latest effective_from not after at, ordered by
// model. The correlated max() is one primary-key (model, effective_from) probe per model.
func (s *Store) Prices(ctx context.Context, at time.Time) ([]store.ModelPrice, error) {
	ps, err := s.queryPrices(ctx, `SELECT `+priceColumns+` FROM model_pricing p
		WHERE effective_from = (SELECT max(effective_from) FROM model_pricing
			WHERE model = p.model AND effective_from <= ?1)
		ORDER BY model`, micros(at))
	if err != nil {
		return nil, fmt.Errorf("sqlite: prices: %w", err)
	}
	return ps, nil
}

// PriceHistory returns a model's versions, newest first.
func (s *Store) PriceHistory(ctx context.Context, model string) ([]store.ModelPrice, error) {
	ps, err := s.queryPrices(ctx, `SELECT `+priceColumns+` FROM model_pricing
		WHERE model = ? ORDER BY effective_from DESC`, model)
	if err != nil {
		return nil, fmt.Errorf("sqlite: price history: %w", err)
	}
	return ps, nil
}

func (s *Store) queryPrices(ctx context.Context, q string, args ...any) ([]store.ModelPrice, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ModelPrice
	for rows.Next() {
		var p store.ModelPrice
		var from int64
		var images *string
		if err := rows.Scan(&p.Model, &p.InputPerM, &p.OutputPerM, &p.CachedInputPerM,
			&p.ReasoningPerM, &from, &p.Version, &images, &p.AudioSecond, &p.CharactersPerM, &p.Request,
			&p.CacheWritePerM); err != nil {
			return nil, err
		}
		var err error
		if p.ImagePrices, err = store.DecodeImagePrices(images); err != nil {
			return nil, err
		}
		p.EffectiveFrom = fromMicros(from)
		out = append(out, p)
	}
	return out, rows.Err()
}

// defaultBillingLimit is the page size of BillingRecords when the filter sets none.
const defaultBillingLimit = 1000

// BillingRecords returns rollup rows ordered by day, then tenant, user, key and model (byte
// order). From and To select days: a row is returned when From's UTC day ≤ its day < To's UTC
// day; days are 'YYYY-MM-DD' text, which compares as dates.
func (s *Store) BillingRecords(ctx context.Context, f store.BillingFilter) ([]store.DailyUsage, error) {
	var where []string
	var args []any
	cond := func(c string, v any) { where, args = append(where, c), append(args, v) }
	if f.TenantID != "" {
		cond("tenant_id = ?", f.TenantID)
	}
	if f.UserID != "" {
		cond("user_id = ?", f.UserID)
	}
	if f.KeyID != "" {
		cond("key_id = ?", f.KeyID)
	}
	if f.Model != "" {
		cond("model = ?", f.Model)
	}
	if !f.From.IsZero() {
		cond("day >= ?", f.From.UTC().Format(time.DateOnly))
	}
	if !f.To.IsZero() {
		cond("day < ?", f.To.UTC().Format(time.DateOnly))
	}
	q := `SELECT day, tenant_id, user_id, key_id, model, requests, prompt_tokens, completion_tokens,
		cached_tokens, reasoning_tokens, cost_pico_usd, priced, cache_write_tokens FROM billing_record`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultBillingLimit
	}
	q += ` ORDER BY day, tenant_id, user_id, key_id, model, priced DESC LIMIT ? OFFSET ?`
	rows, err := s.r.QueryContext(ctx, q, append(args, limit, max(f.Offset, 0))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: billing records: %w", err)
	}
	defer rows.Close()
	var out []store.DailyUsage
	for rows.Next() {
		var d store.DailyUsage
		var day string
		var cost int64
		var priced bool
		if err := rows.Scan(&day, &d.TenantID, &d.UserID, &d.KeyID, &d.Model, &d.Requests,
			&d.PromptTokens, &d.CompletionTokens, &d.CachedTokens, &d.ReasoningTokens, &cost,
			&priced, &d.CacheWriteTokens); err != nil {
			return nil, fmt.Errorf("sqlite: billing records: %w", err)
		}
		if d.Day, err = time.Parse(time.DateOnly, day); err != nil {
			return nil, fmt.Errorf("sqlite: billing records: day %q: %w", day, err)
		}
		if priced {
			d.CostPicoUSD = big.NewInt(cost)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: billing records: %w", err)
	}
	return out, nil
}

// scanMoney reads an INTEGER money column into the *big.Int of the store contract.
func scanMoney(dst **big.Int) sql.Scanner { return moneyScanner{dst} }

type moneyScanner struct{ dst **big.Int }

func (m moneyScanner) Scan(v any) error {
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("money column holds %T, want an integer", v)
	}
	*m.dst = big.NewInt(n)
	return nil
}

// Spend sums the subject's rollups over the calendar month of f.Day and over f.Day, in one
// indexed range scan (billing_record is indexed by user, key and tenant, each with the day).
func (s *Store) Spend(ctx context.Context, f store.SpendFilter) (month, day *big.Int, err error) {
	col, err := store.SpendColumn(f.SubjectType)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: spend: %w", err)
	}
	if f.SubjectID == "" {
		return nil, nil, fmt.Errorf("sqlite: spend: no subject id")
	}
	d := f.Day.UTC()
	first := time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	today := d.Format(time.DateOnly)
	err = s.r.QueryRowContext(ctx, `SELECT COALESCE(sum(cost_pico_usd), 0),
			COALESCE(sum(cost_pico_usd) FILTER (WHERE day = ?), 0)
		FROM billing_record WHERE `+col+` = ? AND (? = '' OR model = ?) AND day >= ? AND day <= ?`,
		today, f.SubjectID, f.Model, f.Model, first, today).Scan(scanMoney(&month), scanMoney(&day))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: spend of %s %q: %w", f.SubjectType, f.SubjectID, err)
	}
	return month, day, nil
}
