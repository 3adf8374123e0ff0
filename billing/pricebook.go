package billing

import (
	"context"
	"errors"
	"time"

	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/store"
)

// PriceStore is what the price book needs of the store: the prices in force, and a way to add a
// version.
type PriceStore interface {
	Prices(ctx context.Context, at time.Time) ([]store.ModelPrice, error)
	PutPrice(ctx context.Context, p store.ModelPrice) error
}

// PriceBook keeps the price in force of every model in memory (a Pricer), so costing a
// request needs no I/O. The store is the source of truth; PUT /admin/pricing reaches every
// replica through the change bus (changes.Pricing).
type PriceBook struct {
	store   PriceStore
	pricer  *Pricer
	changes *changes.Bus
}

// NewPriceBook loads the prices in force and registers with the change bus.
func NewPriceBook(ctx context.Context, st PriceStore, bus *changes.Bus) (*PriceBook, error) {
	b := &PriceBook{store: st, pricer: NewPricer(), changes: bus}
	if err := b.reload(ctx); err != nil {
		return nil, err
	}
	bus.Register(changes.Pricing, func(ctx context.Context, _ string) error { return b.reload(ctx) }, b.reload)
	return b, nil
}

func (b *PriceBook) reload(ctx context.Context) error {
	rows, err := b.store.Prices(ctx, time.Now())
	if err != nil {
		return err
	}
	prices := make([]Price, 0, len(rows))
	for _, r := range rows {
		prices = append(prices, priceOf(r))
	}
	b.pricer.Set(prices)
	return nil
}

func priceOf(r store.ModelPrice) Price {
	return Price{Model: r.Model, InputPerM: r.InputPerM, OutputPerM: r.OutputPerM,
		CachedInputPerM: r.CachedInputPerM, CacheWritePerM: r.CacheWritePerM, ReasoningPerM: r.ReasoningPerM, Images: r.ImagePrices,
		AudioSecond: r.AudioSecond, CharactersPerM: r.CharactersPerM, Request: r.Request, Version: r.Version}
}

// Lookup returns the price in force for a model name (exact, or the pricer's fallback rules).
func (b *PriceBook) Lookup(model string) (Price, bool) {
	if b == nil {
		return Price{}, false
	}
	return b.pricer.Lookup(model)
}

// Put makes a new price version effective now, here at once and on every replica shortly.
func (b *PriceBook) Put(ctx context.Context, p store.ModelPrice) (store.ModelPrice, error) {
	p.EffectiveFrom = time.Now().UTC().Truncate(time.Microsecond)
	p.Version = p.Model + "@" + p.EffectiveFrom.Format(time.RFC3339Nano)
	if err := b.store.PutPrice(ctx, p); err != nil {
		return p, err
	}
	return p, b.changes.Announce(ctx, changes.Pricing, p.Model)
}

// Current lists the prices in force, from the store.
func (b *PriceBook) Current(ctx context.Context) ([]store.ModelPrice, error) {
	return b.store.Prices(ctx, time.Now())
}

// Seed stores the shipped prices of models that have no price yet, so admin changes are never
// overwritten by a restart.
func (b *PriceBook) Seed(ctx context.Context, prices []Price) error {
	have, err := b.store.Prices(ctx, time.Now())
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(have))
	for _, p := range have {
		known[p.Model] = true
	}
	at := time.Unix(0, 0).UTC() // seeded prices are in force from the start of time
	for _, p := range prices {
		if known[p.Model] {
			continue
		}
		v := p.Version
		if v == "" {
			v = p.Model + "@seed"
		}
		err := b.store.PutPrice(ctx, store.ModelPrice{Model: p.Model, InputPerM: p.InputPerM, OutputPerM: p.OutputPerM,
			CachedInputPerM: p.CachedInputPerM, CacheWritePerM: p.CacheWritePerM, ReasoningPerM: p.ReasoningPerM, ImagePrices: p.Images,
			AudioSecond: p.AudioSecond, CharactersPerM: p.CharactersPerM, Request: p.Request, EffectiveFrom: at, Version: v})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return b.reload(ctx)
}
