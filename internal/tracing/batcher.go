package tracing

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher queues ended spans (the SDK's, or the tracer's own) and exports them in batches from
// its own goroutine, dropping spans when the queue is full, as the SDK's batch span processor
// does and with the same settings (OTEL_BSP_*). The SDK's hands every span to its goroutine over
// a channel, which under load means a goroutine wake-up per span, five per chat request: measured
// on the gateway's streamed chat (BenchmarkTracing), that hand-off cost more than the spans'
// making. Here ending a span is an append under a mutex, and the goroutine is woken once a batch
// is full, or when the schedule delay has passed.
type batcher[T any] struct {
	export   func(context.Context, []T) error
	shutdown func(context.Context) error
	discard  func(T) // a span dropped without export; nil: nothing to do
	o        batchOptions

	mu      sync.Mutex
	queue   []T
	stopped bool
	dropped int64 // spans dropped on a full queue, reported with the next export error

	full chan struct{} // a batch is waiting; one token at most
	stop chan struct{}
	done chan struct{} // the goroutine has returned

	exportMu sync.Mutex // one export at a time: the goroutine's or a ForceFlush's
	batch    []T        // the batch being exported, under exportMu
	stopOnce sync.Once
}

// spanProcessor is the batcher as the SDK's span processor, for the SDK's spans.
type spanProcessor struct {
	*batcher[sdktrace.ReadOnlySpan]
}

var _ sdktrace.SpanProcessor = spanProcessor{}

// batchOptions are the batch processor's settings, with the SDK's defaults and variables.
type batchOptions struct {
	maxQueue, maxBatch int
	delay, timeout     time.Duration
}

// batchOptionsFromEnv reads OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
// OTEL_BSP_SCHEDULE_DELAY and OTEL_BSP_EXPORT_TIMEOUT (milliseconds) as the SDK does: a value
// that is not a positive integer leaves the default.
func batchOptionsFromEnv() batchOptions {
	o := batchOptions{
		maxQueue: envInt("OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.DefaultMaxQueueSize),
		maxBatch: envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", sdktrace.DefaultMaxExportBatchSize),
		delay:    time.Duration(envInt("OTEL_BSP_SCHEDULE_DELAY", sdktrace.DefaultScheduleDelay)) * time.Millisecond,
		timeout:  time.Duration(envInt("OTEL_BSP_EXPORT_TIMEOUT", sdktrace.DefaultExportTimeout)) * time.Millisecond,
	}
	if o.maxBatch > o.maxQueue {
		o.maxBatch = min(sdktrace.DefaultMaxExportBatchSize, o.maxQueue)
	}
	return o
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(os.Getenv(key))); err == nil && n > 0 {
		return n
	}
	return def
}

// newBatcher starts the SDK span processor's goroutine, which exports to exp.
func newBatcher(exp sdktrace.SpanExporter, o batchOptions) spanProcessor {
	return spanProcessor{startBatcher(exp.ExportSpans, exp.Shutdown, nil, o)}
}

// startBatcher starts a batcher's goroutine, which exports with export; shutdown is called once
// the last spans are exported, and discard is handed each span dropped without export.
func startBatcher[T any](export func(context.Context, []T) error, shutdown func(context.Context) error, discard func(T), o batchOptions) *batcher[T] {
	b := &batcher[T]{export: export, shutdown: shutdown, discard: discard, o: o,
		queue: make([]T, 0, o.maxQueue), batch: make([]T, 0, o.maxBatch),
		full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// OnStart does nothing: spans are queued when they end.
func (p spanProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span.
func (p spanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		p.add(s)
	}
}

// add queues a span, or drops it when the queue is full or the batcher stopped.
func (b *batcher[T]) add(s T) {
	b.mu.Lock()
	if b.stopped || len(b.queue) >= b.o.maxQueue {
		if !b.stopped {
			b.dropped++
		}
		b.mu.Unlock()
		if b.discard != nil {
			b.discard(s)
		}
		return
	}
	b.queue = append(b.queue, s)
	full := len(b.queue) == b.o.maxBatch
	b.mu.Unlock()
	if full {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// run exports a batch when one is full and whatever is queued when the delay has passed, until
// stop.
func (b *batcher[T]) run() {
	defer close(b.done)
	t := time.NewTimer(b.o.delay)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.full:
		case <-t.C:
		}
		b.exportQueued(context.Background())
		t.Reset(b.o.delay)
	}
}

// exportQueued exports what is queued when it is called, a batch at a time, within ctx: spans
// that keep coming do not keep it going.
func (b *batcher[T]) exportQueued(ctx context.Context) error {
	b.exportMu.Lock()
	defer b.exportMu.Unlock()
	b.mu.Lock()
	left := len(b.queue)
	b.mu.Unlock()
	for left > 0 {
		b.mu.Lock()
		n := min(len(b.queue), b.o.maxBatch, left)
		left -= n
		b.batch = append(b.batch[:0], b.queue[:n]...)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		dropped := b.dropped
		b.dropped = 0
		b.mu.Unlock()
		if n == 0 {
			return nil
		}
		ectx, cancel := context.WithTimeout(ctx, b.o.timeout)
		err := b.export(ectx, b.batch)
		cancel()
		clear(b.batch)
		if err != nil {
			otel.Handle(err)
			if ctx.Err() != nil {
				return err
			}
		}
		if dropped > 0 {
			otel.Handle(droppedError(dropped))
		}
	}
	return nil
}

// droppedError reports spans dropped on a full queue.
type droppedError int64

func (d droppedError) Error() string {
	return "tracing: the span queue was full: " + strconv.FormatInt(int64(d), 10) + " spans dropped"
}

// ForceFlush exports every span queued, within ctx.
func (b *batcher[T]) ForceFlush(ctx context.Context) error {
	return b.exportQueued(ctx)
}

// Shutdown stops the goroutine, exports what is queued (within ctx) and shuts the exporter down.
// Spans that end afterwards are dropped.
func (b *batcher[T]) Shutdown(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.stopped = true
		b.mu.Unlock()
		close(b.stop)
		select {
		case <-b.done:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		err = b.exportQueued(ctx)
		if e := b.shutdown(ctx); err == nil {
			err = e
		}
	})
	return err
}
