package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/store"
)

// Upkeeper is a store whose usage records need housekeeping while it runs: PostgreSQL's monthly
// partitions made ahead, and retention on either store. Both stores implement it.
type Upkeeper interface {
	// UpkeepUsage runs one pass; retentionMonths 0 keeps every record.
	UpkeepUsage(ctx context.Context, retentionMonths int) (store.UsageUpkeep, error)
}

// defaultUpkeepInterval is how often the upkeep runs when Options.UpkeepInterval is unset. A pass
// with nothing to do costs a few catalog lookups, and a month's partitions are made three months
// ahead, so an hour is frequent for the work and cheap for the database.
const defaultUpkeepInterval = time.Hour

// upkeepPassTimeout bounds one pass, so a database that hangs delays the next attempt, not
// forever.
const upkeepPassTimeout = 10 * time.Minute

// Upkeep runs a store's usage upkeep at start and then every Options.UpkeepInterval on every
// replica (the store lets one of them work at a time). A failed pass is logged and counted in
// llmgate_usage_upkeep_errors_total and simply tried again at the next tick; nothing on the
// request path or in the recorder waits for it.
type Upkeep struct {
	store       Upkeeper
	months      int
	every       time.Duration
	log         *slog.Logger
	errors      prometheus.Counter
	lastSuccess prometheus.Gauge
}

// NewUpkeep prepares the upkeep of st with o's RetentionMonths and UpkeepInterval, registering
// its metrics on o.Registerer when set:
//
//	llmgate_usage_upkeep_errors_total                      counter: failed passes
//	llmgate_usage_upkeep_last_success_timestamp_seconds    gauge: end of the last pass that worked
func NewUpkeep(st Upkeeper, o Options, log *slog.Logger) (*Upkeep, error) {
	if o.RetentionMonths < 0 {
		return nil, fmt.Errorf("retention_months: %d is negative", o.RetentionMonths)
	}
	k := &Upkeep{store: st, months: o.RetentionMonths, every: o.UpkeepInterval, log: log,
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "llmgate_usage_upkeep_errors_total",
			Help: "Failed passes of the usage upkeep (partitions made ahead, retention); retried at the next tick."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "llmgate_usage_upkeep_last_success_timestamp_seconds",
			Help: "Unix time the last successful usage upkeep pass ended (0: none yet)."}),
	}
	if k.every <= 0 {
		k.every = defaultUpkeepInterval
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{k.errors, k.lastSuccess} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("%w: %w", errMetrics, err)
			}
		}
	}
	return k, nil
}

// Run runs a pass now and then one per interval until ctx ends; it returns when ctx is done.
func (k *Upkeep) Run(ctx context.Context) {
	t := time.NewTicker(k.every)
	defer t.Stop()
	for {
		k.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass runs one upkeep pass and reports it.
func (k *Upkeep) pass(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, upkeepPassTimeout)
	defer cancel()
	res, err := k.store.UpkeepUsage(pctx, k.months)
	// What a failed pass got done before failing is real, so it is logged too.
	for _, p := range res.Created {
		k.log.Info("usage partition created", "partition", p)
	}
	for _, p := range res.Dropped {
		k.log.Info("usage partition dropped: its month is past usage.retention_months", "partition", p,
			"retention_months", k.months)
	}
	if res.Deleted > 0 {
		k.log.Info("usage records deleted: older than usage.retention_months", "rows", res.Deleted,
			"retention_months", k.months)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: not a failure of the upkeep.
	case err != nil:
		k.errors.Inc()
		k.log.Error("usage upkeep failed; retrying at the next tick", "err", err, "next_in", k.every.String())
	case res.Skipped:
		k.log.Debug("usage upkeep skipped: another replica is running it")
	default:
		k.lastSuccess.SetToCurrentTime()
	}
}
