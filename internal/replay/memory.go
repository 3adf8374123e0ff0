package replay

import (
	"bytes"
	"container/list"
	"context"
	"sync"
	"time"
)

// Memory is the in-process Store of a gateway without Redis: least recently used values go
// first once the values together pass a byte bound, and expired ones are dropped as they are
// met (and from the cold end on each write), so memory stays bounded whatever the traffic.
type Memory struct {
	max int64
	now func() time.Time

	mu    sync.Mutex
	bytes int64
	order *list.List // front: most recently used; elements hold *memEntry
	items map[string]*list.Element
}

type memEntry struct {
	key     string
	val     []byte
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory makes a memory store holding at most maxBytes of keys and values (≤ 0: 64 MiB).
func NewMemory(maxBytes int64) *Memory {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	return &Memory{max: maxBytes, now: time.Now, order: list.New(), items: map[string]*list.Element{}}
}

// Bytes is what the store holds now.
func (m *Memory) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// get finds a live entry and marks it used; the caller holds mu.
func (m *Memory) get(key string, now time.Time) *memEntry {
	el, ok := m.items[key]
	if !ok {
		return nil
	}
	e := el.Value.(*memEntry)
	if !now.Before(e.expires) {
		m.remove(el)
		return nil
	}
	m.order.MoveToFront(el)
	return e
}

func (m *Memory) remove(el *list.Element) {
	e := el.Value.(*memEntry)
	m.order.Remove(el)
	delete(m.items, e.key)
	m.bytes -= int64(len(e.key) + len(e.val))
}

// set stores key; a value larger than the whole bound is not kept. The caller holds mu.
func (m *Memory) set(key string, val []byte, ttl time.Duration, now time.Time) {
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	size := int64(len(key) + len(val))
	if size > m.max {
		return
	}
	for el := m.order.Back(); el != nil && m.bytes+size > m.max; el = m.order.Back() {
		m.remove(el)
	}
	// The cold end's expired entries go too, a few per write.
	for i, el := 0, m.order.Back(); i < 4 && el != nil; i++ {
		prev := el.Prev()
		if !now.Before(el.Value.(*memEntry).expires) {
			m.remove(el)
		}
		el = prev
	}
	m.items[key] = m.order.PushFront(&memEntry{key: key, val: bytes.Clone(val), expires: now.Add(ttl)})
	m.bytes += size
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.get(key, m.now()); e != nil {
		return e.val, nil
	}
	return nil, nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, val []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set(key, val, ttl, m.now())
	return nil
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, key string, val []byte, ttl time.Duration) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e := m.get(key, now); e != nil {
		return e.val, nil
	}
	m.set(key, val, ttl, now)
	return nil, nil
}

// Finish implements Store.
func (m *Memory) Finish(_ context.Context, key string, claim, val []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e := m.get(key, now); e != nil && bytes.Equal(e.val, claim) {
		m.set(key, val, ttl, now)
	}
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, key string, claim []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok && bytes.Equal(el.Value.(*memEntry).val, claim) {
		m.remove(el)
	}
	return nil
}
