package gateway

import (
	"net/netip"
	"sync"
	"time"
)

// lookupBudget is a token bucket per client address for the store lookups of keys not known as
// valid: each address may cause perMinute of them a minute, in bursts of as many. The address is
// the connection's own (never X-Forwarded-For, which the client writes), an IPv6 client's /64 as
// one address since a single host often holds a whole /64.
//
// It is a few lines of its own rather than golang.org/x/time/rate: a lookup that finds a valid
// key gives its token back, which rate.Limiter cannot do once the token is spent.
type lookupBudget struct {
	perMinute float64
	max       int // addresses remembered

	mu      sync.Mutex
	buckets map[string]bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// maxBudgetAddresses bounds the addresses remembered; beyond it, the fullest of a few sampled
// buckets is forgotten (a full bucket carries no information).
const maxBudgetAddresses = 50_000

// newLookupBudget returns nil (no bound) for a negative perMinute.
func newLookupBudget(perMinute int) *lookupBudget {
	if perMinute < 0 {
		return nil
	}
	return &lookupBudget{perMinute: float64(perMinute), max: maxBudgetAddresses, buckets: map[string]bucket{}}
}

// budgetAddress is the bucket of a RemoteAddr ("ip:port").
func budgetAddress(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote // not ip:port (a test's or a unix socket's): one bucket per distinct value
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr().String()
	}
	return a.String()
}

// refill brings a bucket up to now.
func (b *lookupBudget) refill(k bucket, now time.Time) bucket {
	k.tokens = min(b.perMinute, k.tokens+now.Sub(k.at).Minutes()*b.perMinute)
	k.at = now
	return k
}

// take spends one lookup of addr's budget; when none is left, it returns how long until one is.
func (b *lookupBudget) take(remote string, now time.Time) (time.Duration, bool) {
	if b == nil {
		return 0, true
	}
	addr := budgetAddress(remote)
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.buckets[addr]
	if ok {
		k = b.refill(k, now)
	} else {
		if len(b.buckets) >= b.max {
			b.evict(now)
		}
		k = bucket{tokens: b.perMinute, at: now}
	}
	if k.tokens < 1 {
		b.buckets[addr] = k
		if b.perMinute == 0 {
			return time.Minute, false
		}
		return time.Duration((1 - k.tokens) / b.perMinute * float64(time.Minute)), false
	}
	k.tokens--
	b.buckets[addr] = k
	return 0, true
}

// refund gives back a lookup that found a valid key.
func (b *lookupBudget) refund(remote string) {
	if b == nil {
		return
	}
	addr := budgetAddress(remote)
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.buckets[addr]; ok {
		k.tokens = min(b.perMinute, k.tokens+1)
		b.buckets[addr] = k
	}
}

// evict forgets the fullest of a few sampled buckets.
func (b *lookupBudget) evict(now time.Time) {
	var victim string
	most := -1.0
	n := 0
	for a, k := range b.buckets {
		if t := b.refill(k, now).tokens; t > most {
			victim, most = a, t
		}
		if n++; n == evictSamples {
			break
		}
	}
	delete(b.buckets, victim)
}
