package tracing

import (
	"context"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// recordingExporter keeps the size of each batch it is given; while gate is set, exports wait
// for it to close.
type recordingExporter struct {
	mu       sync.Mutex
	batches  []int
	names    []string
	gate     chan struct{}
	shutdown bool
}

func (e *recordingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	gate := e.gate
	e.mu.Unlock()
	if gate != nil {
		<-gate
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.batches = append(e.batches, len(spans))
	for _, s := range spans {
		e.names = append(e.names, s.Name())
	}
	return nil
}

func (e *recordingExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shutdown = true
	return nil
}

func (e *recordingExporter) state() ([]int, int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.batches...), len(e.names), e.shutdown
}

// TestBatcherBatchesFlushesDropsAndStops: a full batch goes out without waiting for the delay;
// ForceFlush sends what is queued; a full queue drops spans instead of blocking the request;
// unsampled spans are not queued; Shutdown sends the rest, stops the exporter and the goroutine,
// and drops spans that end later.
func TestBatcherBatchesFlushesDropsAndStops(t *testing.T) {
	exp := &recordingExporter{}
	b := newBatcher(exp, batchOptions{maxQueue: 6, maxBatch: 4, delay: time.Hour, timeout: 10 * time.Second})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	tr := tp.Tracer("t")
	end := func(n int) {
		for range n {
			_, s := tr.Start(context.Background(), "s")
			s.End()
		}
	}

	end(4) // a full batch: exported by the goroutine, long before the hour's delay
	deadline := time.Now().Add(10 * time.Second)
	for batches, _, _ := exp.state(); len(batches) == 0; batches, _, _ = exp.state() {
		if time.Now().After(deadline) {
			t.Fatal("a full batch was not exported before the delay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	end(3)
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if batches, n, _ := exp.state(); n != 7 || len(batches) != 2 || batches[0] != 4 || batches[1] != 3 {
		t.Fatalf("batches %v (%d spans), want [4 3]", batches, n)
	}

	// The exporter hangs: the queue fills and the rest is dropped, without blocking End.
	exp.mu.Lock()
	exp.gate = make(chan struct{})
	exp.mu.Unlock()
	end(4) // a batch the goroutine takes and hangs on
	for {
		b.mu.Lock()
		taken := len(b.queue) == 0
		b.mu.Unlock()
		if taken {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { end(10); close(done) }() // 6 fit the queue, 4 are dropped
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ending spans blocked on a full queue")
	}
	b.mu.Lock()
	queued, dropped := len(b.queue), b.dropped
	b.mu.Unlock()
	if queued != 6 || dropped != 4 {
		t.Fatalf("queued %d, dropped %d; want 6 and 4", queued, dropped)
	}
	close(exp.gate)

	// Unsampled spans are not queued.
	off := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(sdktrace.NeverSample()))
	_, s := off.Tracer("t").Start(context.Background(), "unsampled")
	s.End()

	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	default:
		t.Fatal("the goroutine still runs after Shutdown")
	}
	end(1)
	batches, n, shut := exp.state()
	if n != 7+4+6 || !shut {
		t.Fatalf("after Shutdown: %d spans exported in %v, exporter shut down %v; want 17 and true", n, batches, shut)
	}
	for _, name := range exp.names {
		if name == "unsampled" {
			t.Fatal("an unsampled span was exported")
		}
	}
}

// TestBatchOptionsFromEnv: the OTEL_BSP_* variables set the processor as they set the SDK's; a
// value that is not a positive integer leaves the default.
func TestBatchOptionsFromEnv(t *testing.T) {
	if o := batchOptionsFromEnv(); o != (batchOptions{maxQueue: 2048, maxBatch: 512, delay: 5 * time.Second, timeout: 30 * time.Second}) {
		t.Fatalf("defaults %+v", o)
	}
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "700")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "-1")
	if o := batchOptionsFromEnv(); o != (batchOptions{maxQueue: 100, maxBatch: 100, delay: 250 * time.Millisecond, timeout: 30 * time.Second}) {
		t.Fatalf("from the environment %+v", o)
	}
}
