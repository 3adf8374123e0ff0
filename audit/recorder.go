// Package audit carries usage records from the request path to the store: a bounded in-process
// channel drained by one batch writer, so recording never blocks a request and the store sees a
// few large inserts instead of one per request.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llmgate/llmgate/store"
)

// Sink is where batches go: the store in production, anything with the same method in tests.
type Sink interface {
	InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error)
}

// Options is the `usage` section of the config.
type Options struct {
	// QueueSize bounds the channel between requests and the writer (default 65536).
	QueueSize int `yaml:"queue_size"`
	// BatchSize flushes a batch when it holds this many records (default 1000).
	BatchSize int `yaml:"batch_size"`
	// FlushInterval flushes a non-empty batch at least this often (default 200ms).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// WriteRetries is how many times a failed batch write is retried, with backoff, before the
	// batch is reported lost (default 3, as the seed asks).
	WriteRetries int `yaml:"write_retries"`
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.WriteRetries <= 0 {
		o.WriteRetries = 3
	}
	return o
}

// Stats are the recorder's counters, for metrics.
type Stats struct {
	Enqueued, Written, Dropped, WriteErrors int64
	Backlog                                 int
}

// Recorder is the channel and its writer. Record is safe for concurrent use; Close once.
type Recorder struct {
	opts Options
	sink Sink
	log  *slog.Logger
	ch   chan store.UsageRecord
	done chan struct{}

	mu    sync.Mutex
	stats Stats
}

// NewRecorder starts the writer goroutine; Close stops it after draining.
func NewRecorder(sink Sink, opts Options, log *slog.Logger) *Recorder {
	opts = opts.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{opts: opts, sink: sink, log: log,
		ch: make(chan store.UsageRecord, opts.QueueSize), done: make(chan struct{})}
	go r.run()
	return r
}

// Record enqueues one record without ever blocking. It reports false when the queue was full and
// the record was dropped (counted; the ledger issue adds an on-disk spool for this case).
func (r *Recorder) Record(rec store.UsageRecord) bool {
	select {
	case r.ch <- rec:
		r.count(func(s *Stats) { s.Enqueued++ })
		return true
	default:
		r.count(func(s *Stats) { s.Dropped++ })
		r.log.Error("usage queue full: record dropped", "request_id", rec.RequestID)
		return false
	}
}

// Stats returns a snapshot of the counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Backlog = len(r.ch)
	return s
}

// Close stops accepting records, writes what is queued and returns when done or when ctx ends.
// Record must not be called after Close.
func (r *Recorder) Close(ctx context.Context) error {
	close(r.ch)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Recorder) count(f func(*Stats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

func (r *Recorder) run() {
	defer close(r.done)
	batch := make([]store.UsageRecord, 0, r.opts.BatchSize)
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	flush := func() {
		if len(batch) > 0 {
			r.write(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case rec, ok := <-r.ch:
			if !ok {
				flush()
				return
			}
			batch = append(batch, rec)
			if len(batch) >= r.opts.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// write inserts one batch, retrying with exponential backoff. The insert is idempotent on request
// id, so a retry after an ambiguous failure cannot duplicate rows.
func (r *Recorder) write(batch []store.UsageRecord) {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := r.sink.InsertUsage(ctx, batch)
		cancel()
		if err == nil {
			r.count(func(s *Stats) { s.Written += int64(len(batch)) })
			return
		}
		r.count(func(s *Stats) { s.WriteErrors++ })
		if attempt >= r.opts.WriteRetries {
			r.count(func(s *Stats) { s.Dropped += int64(len(batch)) })
			r.log.Error("usage batch lost after retries", "records", len(batch), "err", err)
			return
		}
		r.log.Warn("usage batch write failed; retrying", "records", len(batch), "attempt", attempt+1, "err", err)
		time.Sleep(backoff)
		backoff *= 2
	}
}
