package quota

import (
	"sync"
	"time"
)

// pendingSettle is a settlement of a Redis lease that has not been delivered yet.
type pendingSettle struct {
	lease *Lease
	used  Spent
	// deadline is when the lease expires in Redis at the latest: it is not renewed once its
	// request has ended, so it lives at most one lease TTL from then. Past it, the release is
	// moot and the entry is dropped.
	deadline time.Time
}

// settleQueue holds the settlements Resilient could not deliver, for replay. Replaying is
// idempotent (settle.lua frees a lease and corrects its tokens only if the lease is still
// there), so an entry may be sent any number of times: one whose earlier attempt reached Redis
// after all costs a no-op. The queue is bounded: entries taken for sending still count, so the
// bound holds while a replay is in flight.
type settleQueue struct {
	mu       sync.Mutex
	items    []pendingSettle
	inFlight int
	max      int
	closed   bool
	// wake tells the replayer that entries arrived or Redis came back.
	wake chan struct{}
}

func newSettleQueue(max int) *settleQueue {
	return &settleQueue{max: max, wake: make(chan struct{}, 1)}
}

// push queues p. A full queue makes room by evicting its oldest entry, whose lease expires
// first and so matters least; evicted counts it. ok is false when p itself could not be queued:
// the queue is closed, or full of entries being sent.
func (q *settleQueue) push(p pendingSettle) (ok bool, evicted int) {
	q.mu.Lock()
	if !q.closed && len(q.items)+q.inFlight >= q.max && len(q.items) > 0 {
		q.items[0] = pendingSettle{}
		q.items = q.items[1:]
		evicted = 1
	}
	ok = !q.closed && len(q.items)+q.inFlight < q.max
	if ok {
		q.items = append(q.items, p)
	}
	q.mu.Unlock()
	if ok {
		q.signal()
	}
	return ok, evicted
}

func (q *settleQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes up to n entries for sending, oldest first, after removing those past their
// deadline (returned apart, for counting). Each call must be followed by done.
func (q *settleQueue) take(n int, now time.Time) (batch []pendingSettle, expired int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	expired = q.expireLocked(now)
	n = min(n, len(q.items))
	batch = make([]pendingSettle, n)
	copy(batch, q.items)
	q.items = append(q.items[:0], q.items[n:]...)
	q.inFlight += n
	return batch, expired
}

// done ends a take: sent entries leave the queue, failed ones go back to its head.
func (q *settleQueue) done(sent int, failed []pendingSettle) {
	q.mu.Lock()
	q.inFlight -= sent
	if len(failed) > 0 {
		q.items = append(failed, q.items...)
	}
	q.mu.Unlock()
}

// expire removes the entries past their deadline and returns how many.
func (q *settleQueue) expire(now time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.expireLocked(now)
}

func (q *settleQueue) expireLocked(now time.Time) int {
	kept := q.items[:0]
	for _, p := range q.items {
		if now.Before(p.deadline) {
			kept = append(kept, p)
		}
	}
	n := len(q.items) - len(kept)
	clear(q.items[len(kept):]) // let the leases go
	q.items = kept
	return n
}

// len is the number of entries queued or being sent.
func (q *settleQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) + q.inFlight
}

// close refuses further entries and empties the queue, returning how many it held.
func (q *settleQueue) close() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	n := len(q.items) + q.inFlight
	q.items = nil
	return n
}
