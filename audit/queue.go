package audit

import (
	"sync"

	"github.com/llmgate/llmgate/store"
)

// minQueueSlots is the ring's first size once a record arrives.
const minQueueSlots = 64

// queue is the bounded FIFO between Record and the writers: a ring of record holders that grows
// (doubling) with the backlog up to its bound, and that a writer lets go when its tick finds it
// empty. A buffered channel would do the same job but is made whole up front (half a megabyte of
// pointers at the default bound), and as its ring turns under load every page of it is touched
// and stays resident for good, also once the gateway is idle again.
type queue struct {
	mu   sync.Mutex
	ring []*store.UsageRecord // len(ring) is the room now; nil while idle
	head int                  // the oldest record's slot
	n    int                  // records held
	max  int                  // the bound (Options.QueueSize)
}

func newQueue(max int) *queue { return &queue{max: max} }

// push appends p unless the queue holds max records. It returns the number of records held
// after it, and whether p was taken.
func (q *queue) push(p *store.UsageRecord) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= q.max {
		return q.n, false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	return q.n, true
}

// grow doubles the ring (within max), keeping the records in order. q.mu is held.
func (q *queue) grow() {
	ring := make([]*store.UsageRecord, min(q.max, max(minQueueSlots, 2*len(q.ring))))
	k := copy(ring, q.ring[q.head:])
	copy(ring[k:], q.ring[:q.head])
	q.ring, q.head = ring, 0
}

// pop moves up to len(dst) of the oldest records into dst and returns how many it moved.
func (q *queue) pop(dst []*store.UsageRecord) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(len(dst), q.n)
	for i := range k {
		dst[i] = q.ring[q.head]
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
	}
	q.n -= k
	if q.n == 0 {
		q.head = 0
	}
	return k
}

// len is the number of records held.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// release lets the ring go when it is empty: the next record starts a small one.
func (q *queue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		q.ring, q.head = nil, 0
	}
}
