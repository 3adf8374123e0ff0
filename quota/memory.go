package quota

import (
	"context"
	"sync"
	"time"
)

// window is the RPM window: "exact" means no 60 s window ever admits more than the limit.
const window = time.Minute

// Memory is the in-process Limiter of the embedded default. RPM is a sliding log (the times of the
// last `limit` admissions), so no 60 s window ever admits more than the limit; concurrency is a
// counter per subject.
type Memory struct {
	now func() time.Time

	mu       sync.Mutex
	subjects map[string]*memSubject
}

var _ Limiter = (*Memory)(nil)

type memSubject struct {
	log      []time.Time // ring of admission times, len == cap == RPM limit when in use
	next     int         // ring position of the oldest entry
	count    int         // entries in use
	inFlight int64
	lastUsed time.Time
}

// NewMemory returns an empty in-memory limiter. now may be nil (time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, subjects: make(map[string]*memSubject)}
}

// Admit implements Limiter.
func (m *Memory) Admit(_ context.Context, req Request) (Result, error) {
	now := m.now()
	res := Result{Allowed: true}
	m.mu.Lock()
	defer m.mu.Unlock()
	states := make([]*memSubject, len(req.Subjects))
	for i, s := range req.Subjects {
		st := m.subjects[s.Key()]
		if st == nil {
			st = &memSubject{}
			m.subjects[s.Key()] = st
		}
		st.lastUsed = now
		states[i] = st
		if l := s.Limits.Concurrent; l > 0 && st.inFlight >= l {
			return Result{Dimension: DimConcurrent, Subject: s.Key()}, nil
		}
		if l := s.Limits.RPM; l > 0 {
			used, oldest := st.window(now, int(l))
			remaining := l - int64(used)
			reset := time.Duration(0)
			if used > 0 {
				reset = oldest.Add(window).Sub(now)
			}
			if remaining <= 0 {
				return Result{Dimension: DimRPM, Subject: s.Key(), RetryAfter: reset,
					LimitRequests: l, ResetRequests: reset}, nil
			}
			if res.LimitRequests == 0 || remaining-1 < res.RemainingRequests {
				res.LimitRequests, res.RemainingRequests, res.ResetRequests = l, remaining-1, reset
			}
		}
	}
	for i, s := range req.Subjects {
		st := states[i]
		if s.Limits.Concurrent > 0 {
			st.inFlight++
		}
		if l := s.Limits.RPM; l > 0 {
			st.push(now, int(l))
		}
	}
	res.Lease = &Lease{subjects: req.Subjects}
	if res.LimitRequests > 0 && res.ResetRequests == 0 {
		res.ResetRequests = window
	}
	return res, nil
}

// Release implements Limiter.
func (m *Memory) Release(_ context.Context, lease *Lease) error {
	if lease == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range lease.subjects {
		if s.Limits.Concurrent <= 0 {
			continue
		}
		if st := m.subjects[s.Key()]; st != nil && st.inFlight > 0 {
			st.inFlight--
		}
	}
	lease.subjects = nil // a second Release is a no-op
	return nil
}

// InFlight reports the concurrency slots a subject holds (for the admin usage view and tests).
func (m *Memory) InFlight(s Subject) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.subjects[s.Key()]; st != nil {
		return st.inFlight
	}
	return 0
}

// Sweep forgets subjects idle for longer than the RPM window with nothing in flight, so memory
// stays bounded by the subjects active in the last minute.
func (m *Memory) Sweep() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, st := range m.subjects {
		if st.inFlight == 0 && now.Sub(st.lastUsed) > window {
			delete(m.subjects, k)
		}
	}
}

// window drops entries older than the window and reports how many remain and the oldest one.
func (st *memSubject) window(now time.Time, limit int) (int, time.Time) {
	if len(st.log) != limit {
		st.resize(limit)
	}
	for st.count > 0 && now.Sub(st.log[st.next]) >= window {
		st.next = (st.next + 1) % len(st.log)
		st.count--
	}
	if st.count == 0 {
		return 0, time.Time{}
	}
	return st.count, st.log[st.next]
}

func (st *memSubject) push(now time.Time, limit int) {
	if len(st.log) != limit {
		st.resize(limit)
	}
	st.log[(st.next+st.count)%len(st.log)] = now
	st.count++
}

// resize keeps the newest entries when a limit changes.
func (st *memSubject) resize(limit int) {
	kept := make([]time.Time, 0, limit)
	start := 0
	if st.count > limit {
		start = st.count - limit
	}
	for i := start; i < st.count; i++ {
		kept = append(kept, st.log[(st.next+i)%len(st.log)])
	}
	st.log = make([]time.Time, limit)
	copy(st.log, kept)
	st.next, st.count = 0, len(kept)
}
