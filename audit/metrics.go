package audit

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric help texts other packages must repeat word for word when they register the same metric
// name with other label values (Prometheus refuses one name with two help texts).
const (
	// DBWriteErrorHelp is the help of gov_db_write_error_total{table}.
	DBWriteErrorHelp = "Failed database writes, by table."
)

var errMetrics = errors.New("audit: register metrics")

// metrics are the recorder's Prometheus metrics, under the gov_* names the governance dashboards
// and alerts expect, or in llmgate's own namespace. Counters and gauges read the recorder's atomics at scrape time, so
// the request path pays for one atomic add per record and nothing else; only the write-time
// histogram is observed, by the writer and the replayer.
//
//	gov_audit_process_duration_ms            histogram: one Sink call (a batch, or half of a split batch)
//	gov_dead_letter_total                    counter: records and spool bytes dead-lettered
//	gov_db_write_error_total{table="usage_records"}  counter: failed Sink calls, each retry included
//	llmgate_usage_queue_depth                gauge: records in the queue
//	llmgate_usage_written_total              counter: records committed to the store
//	llmgate_usage_dropped_total              counter: records lost (only without a spool, or past it)
//	llmgate_usage_spooled_total              counter: records appended to the spool
//	llmgate_usage_replayed_total             counter: spooled records committed by replay
//	llmgate_usage_spool_bytes                gauge: bytes of spool on disk
//	llmgate_usage_spool_max_bytes            gauge: the spool's bound (0: none)
//	llmgate_usage_spool_full_dropped_total   counter: records lost because the spool was full
type metrics struct {
	reg        prometheus.Registerer
	duration   prometheus.Histogram
	collectors []prometheus.Collector
}

func newMetrics(r *Recorder, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{reg: reg, duration: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gov_audit_process_duration_ms",
		Help:    "Duration of one usage batch write into the store, in milliseconds.",
		Buckets: []float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000},
	})}
	if reg == nil {
		return m, nil
	}
	counter := func(name, help string, labels prometheus.Labels, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v()) })
	}
	gauge := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v()) })
	}
	m.collectors = []prometheus.Collector{
		m.duration,
		counter("gov_dead_letter_total", "Usage records (and undecodable spool bytes) set aside in the dead-letter file.",
			nil, r.deadLettered.Load),
		counter("gov_db_write_error_total", DBWriteErrorHelp, prometheus.Labels{"table": "usage_records"},
			r.writeErrors.Load),
		gauge("llmgate_usage_queue_depth", "Usage records in the in-process queue, not yet taken by the writer.",
			func() int64 { return int64(r.q.len()) }),
		counter("llmgate_usage_written_total", "Usage records committed to the store.", nil, r.written.Load),
		counter("llmgate_usage_dropped_total", "Usage records lost: the queue was full or a batch failed with no spool to take it.",
			nil, r.dropped.Load),
		counter("llmgate_usage_spooled_total",
			"Usage records appended to the on-disk spool (queue full, database down, shutdown deadline).",
			nil, r.spooled.Load),
		counter("llmgate_usage_replayed_total", "Spooled usage records committed to the store by replay.",
			nil, r.replayed.Load),
		gauge("llmgate_usage_spool_bytes", "Bytes of usage spool on disk, waiting for replay.",
			func() int64 {
				if r.spool == nil {
					return 0
				}
				return r.spool.bytes.Load()
			}),
		gauge("llmgate_usage_spool_max_bytes", "Bound of the usage spool on disk (usage.spool_max_bytes); 0 when unbounded or without a spool.",
			func() int64 {
				if r.spool == nil {
					return 0
				}
				return max(r.spool.maxBytes, 0)
			}),
		counter("llmgate_usage_spool_full_dropped_total",
			"Usage records lost because the spool was at usage.spool_max_bytes (also in llmgate_usage_dropped_total).",
			nil, r.spoolFull.Load),
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("%w: %w", errMetrics, err)
		}
	}
	return m, nil
}

func (m *metrics) observe(d time.Duration) {
	m.duration.Observe(float64(d) / float64(time.Millisecond))
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
