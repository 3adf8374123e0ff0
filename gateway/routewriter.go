package gateway

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/llmgate/llmgate/store"
)

// routeWriter records response routes for all the requests in flight in few transactions (group
// commit): a route joins the queue, and whatever is queued when the store is free goes in one
// PutResponseRoutes. Each caller still learns when its own route is committed, and waits for that
// before the end of its answer leaves, so the guarantee stays what it was with one write per
// route: a follow-up sent as soon as an answer is complete finds its route, on any replica, since
// it is in the store they share. Only the cost changes: with many streams ending at once, one
// commit (one SQLite WAL sync, one PostgreSQL round trip) serves them all instead of one each.
//
// No goroutine runs while the queue is empty: the first route queued starts one, which writes
// batch after batch and ends when it finds the queue empty.
type routeWriter struct {
	store ResponseRoutes

	mu      sync.Mutex
	queue   []routePut
	writing bool // a goroutine is writing and will take what is queued
}

// routePut is one route waiting for its batch; done gets the batch's outcome for it.
type routePut struct {
	route store.ResponseRoute
	done  chan error
}

// maxRouteBatch bounds one transaction, so that a burst is committed in steps.
const maxRouteBatch = 256

func newRouteWriter(s ResponseRoutes) *routeWriter { return &routeWriter{store: s} }

// submit queues a route and returns where its outcome will come (exactly one value, within about
// routeWriteTimeout of its batch starting).
func (w *routeWriter) submit(r store.ResponseRoute) <-chan error {
	done := make(chan error, 1)
	w.mu.Lock()
	w.queue = append(w.queue, routePut{route: r, done: done})
	start := !w.writing
	w.writing = true
	w.mu.Unlock()
	if start {
		go w.run()
	}
	return done
}

// put writes a route and waits until it is committed, or until timeout.
func (w *routeWriter) put(r store.ResponseRoute, timeout time.Duration) error {
	return awaitRoute(w.submit(r), timeout)
}

// awaitRoute waits for a submitted route's outcome, at most timeout.
func awaitRoute(done <-chan error, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return context.DeadlineExceeded
	}
}

// run writes what is queued, batch after batch, until the queue is empty.
func (w *routeWriter) run() {
	for {
		// Yield once before taking the batch: the requests that are already runnable (under load,
		// other streams passing their response.created) get to queue their routes and join this
		// commit. Idle, nothing else runs and the write starts at once. Without it, batches under
		// the bench's load were mostly single routes, since the store is quick.
		runtime.Gosched()
		w.mu.Lock()
		batch := w.queue
		if len(batch) > maxRouteBatch {
			batch, w.queue = batch[:maxRouteBatch:maxRouteBatch], batch[maxRouteBatch:]
		} else {
			w.queue = nil
		}
		if len(batch) == 0 {
			w.writing = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.write(batch)
	}
}

// write commits one batch and tells each of its callers. A batch the store refuses is written
// again route by route, so that one route the store will not take does not cost the others theirs.
func (w *routeWriter) write(batch []routePut) {
	ctx, cancel := context.WithTimeout(context.Background(), routeWriteTimeout)
	defer cancel()
	rs := make([]store.ResponseRoute, len(batch))
	for i, p := range batch {
		rs[i] = p.route
	}
	err := w.store.PutResponseRoutes(ctx, rs)
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		for _, p := range batch {
			p.done <- w.store.PutResponseRoute(ctx, p.route)
		}
		return
	}
	for _, p := range batch {
		p.done <- err
	}
}
