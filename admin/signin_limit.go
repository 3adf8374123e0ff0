package admin

import (
	"net/netip"
	"sync"
	"time"
)

// Failed console sign-ins are limited per client address, so the sign-in form is no oracle for
// guessing tokens. The count lives in this replica's memory: a guesser spread over N replicas gets
// N times the budget, which is still far below what guessing a 32-character token needs, and a
// restart forgets it. The address is the TCP peer's: behind a reverse proxy every browser shares
// the proxy's budget (X-Forwarded-For is not trusted, since anyone can write it).
const (
	signInFailures = 10          // failures allowed per address in one window
	signInWindow   = time.Minute // the window's length, counted from its first failure
	signInTracked  = 10_000      // addresses remembered before the expired ones are dropped
)

// signInLimiter counts failed sign-ins per address in fixed windows.
type signInLimiter struct {
	mu sync.Mutex
	m  map[netip.Addr]signInWindowState
}

type signInWindowState struct {
	start    time.Time
	failures int
}

// wait is how long an address must wait before its next attempt; 0 lets it try now.
func (l *signInLimiter) wait(a netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[a]
	if !ok || now.Sub(w.start) >= signInWindow || w.failures < signInFailures {
		return 0
	}
	return w.start.Add(signInWindow).Sub(now)
}

// failed counts a failed attempt of an address.
func (l *signInLimiter) failed(a netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[netip.Addr]signInWindowState)
	}
	w, ok := l.m[a]
	if !ok || now.Sub(w.start) >= signInWindow {
		if !ok && len(l.m) >= signInTracked {
			for k, v := range l.m {
				if now.Sub(v.start) >= signInWindow {
					delete(l.m, k)
				}
			}
		}
		w = signInWindowState{start: now}
	}
	w.failures++
	l.m[a] = w
}
