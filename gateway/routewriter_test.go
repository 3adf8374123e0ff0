package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/sqlite"
)

// heldRoutes is a real SQLite store whose batch writes can be held at their start (to let routes
// queue behind one), that counts the routes of each batch, and that can refuse batches of more
// than one route (to see them written again one by one).
type heldRoutes struct {
	*sqlite.Store
	hold        chan struct{} // the first batch waits for it to close; nil: no wait
	refuseMulti bool

	mu      sync.Mutex
	batches []int
	started chan struct{} // closed when the first batch begins
}

func (h *heldRoutes) PutResponseRoutes(ctx context.Context, rs []store.ResponseRoute) error {
	h.mu.Lock()
	first := len(h.batches) == 0
	h.batches = append(h.batches, len(rs))
	h.mu.Unlock()
	if first && h.hold != nil {
		close(h.started)
		<-h.hold
	}
	if h.refuseMulti && len(rs) > 1 {
		return errors.New("refused")
	}
	return h.Store.PutResponseRoutes(ctx, rs)
}

func (h *heldRoutes) sizes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.batches...)
}

func newHeldRoutes(t *testing.T) *heldRoutes {
	t.Helper()
	st, err := sqlite.New(context.Background(), filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &heldRoutes{Store: st, hold: make(chan struct{}), started: make(chan struct{})}
}

func testRoute(id string) store.ResponseRoute {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.ResponseRoute{ResponseID: id, TenantID: store.DefaultTenant, KeyID: "k1", Model: "m", DeploymentID: "d1",
		Provider: "p", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// putWhileHeld puts one route, holds its batch, puts n more concurrently, waits until all n are
// queued, releases the store, and checks that every put returns without error only once its
// route can be read back.
func putWhileHeld(t *testing.T, h *heldRoutes, n int) {
	t.Helper()
	w := newRouteWriter(h)
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	put := func(id string) {
		defer wg.Done()
		if err := w.put(testRoute(id), 30*time.Second); err != nil {
			errs <- fmt.Errorf("put %s: %w", id, err)
			return
		}
		if _, err := h.ResponseRoute(context.Background(), id, time.Now()); err != nil {
			errs <- fmt.Errorf("route %s right after its put returned: %w", id, err)
		}
	}
	wg.Add(1)
	go put("resp_first")
	<-h.started
	for i := range n {
		wg.Add(1)
		go put(fmt.Sprintf("resp_%d", i))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		queued := len(w.queue)
		w.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d routes queued, want %d", queued, n)
		}
	}
	close(h.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// With nothing left to write, its goroutine ends.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		writing, queued := w.writing, len(w.queue)
		w.mu.Unlock()
		if !writing && queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer is still busy (writing %v, %d queued) after every put returned", writing, queued)
		}
	}
}

// Routes put while a batch is being written are committed together in the next one, and each
// put returns once its own route is readable.
func TestRouteWriterBatchesConcurrentPuts(t *testing.T) {
	h := newHeldRoutes(t)
	putWhileHeld(t, h, 20)
	if got := h.sizes(); len(got) != 2 || got[0] != 1 || got[1] != 20 {
		t.Errorf("batch sizes %v, want [1 20]", got)
	}
}

// A batch the store refuses is written again route by route: every route still lands.
func TestRouteWriterFallsBackRouteByRoute(t *testing.T) {
	h := newHeldRoutes(t)
	h.refuseMulti = true
	putWhileHeld(t, h, 5)
	if got := h.sizes(); len(got) != 2 || got[1] != 5 {
		t.Errorf("batch sizes %v, want [1 5]", got)
	}
}

// A burst larger than one transaction's bound is committed in several.
func TestRouteWriterBoundsBatches(t *testing.T) {
	h := newHeldRoutes(t)
	putWhileHeld(t, h, maxRouteBatch+3)
	if got := h.sizes(); len(got) != 3 || got[1] != maxRouteBatch || got[2] != 3 {
		t.Errorf("batch sizes %v, want [1 %d 3]", got, maxRouteBatch)
	}
}
