package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PermitLeaseOptions configures permit leases (the config's quota.permit_leases): a replica
// takes a batch of permits for a busy set of subjects in one admission (k requests of each
// subject's RPM, k concurrency slots, k times the request's token reservation) and admits the
// next requests of that set locally, with no Redis call, giving back what it did not use when
// the lease ends. Only the Redis limiter uses them.
type PermitLeaseOptions struct {
	// Enabled turns permit leases on (default off).
	Enabled bool `yaml:"enabled"`
	// Duration is how long a replica admits from one lease before it gives back the rest
	// (default 200ms, at most 1s): the longest a permit it holds is kept from another replica.
	Duration time.Duration `yaml:"duration"`
	// MaxPermits caps the permits of one lease (default 256).
	MaxPermits int `yaml:"max_permits"`
}

func (o PermitLeaseOptions) withDefaults() PermitLeaseOptions {
	if o.Duration <= 0 {
		o.Duration = 200 * time.Millisecond
	}
	o.Duration = min(o.Duration, time.Second)
	if o.MaxPermits <= 0 {
		o.MaxPermits = 256
	}
	return o
}

// Validate names the first invalid field.
func (o PermitLeaseOptions) Validate() error {
	switch {
	case o.Duration < 0 || o.Duration > time.Second:
		return fmt.Errorf("quota.permit_leases.duration: %v is not within 0 and 1s", o.Duration)
	case o.MaxPermits < 0 || o.MaxPermits > 10_000:
		return fmt.Errorf("quota.permit_leases.max_permits: %d is not within 0 and 10000", o.MaxPermits)
	}
	return nil
}

// permitLeases are the leases of one Redis limiter (a replica), one per set of subjects (a
// shape: the subjects' keys and limits) at most, and what decides the size of the next one: the
// gap between the shape's admissions here.
type permitLeases struct {
	opts    PermitLeaseOptions
	replica string // names this replica among those taking leases (admit.lua counts them)
	mu      sync.Mutex
	shapes  map[string]*leaseShape
	calls   int // takes since the last sweep of idle shapes
}

type leaseShape struct {
	last     time.Time
	gap      time.Duration // moving average of the gaps between admissions
	cur      *permitLease
	granting chan struct{} // closed when the admission asking for a lease returns; nil: none in flight
}

// permitLease is one lease: its permits, slots and tokens, and what its requests use of them.
// Guarded by permitLeases.mu.
type permitLease struct {
	id       string
	tenant   string
	subjects []Subject
	k        int
	tokens   int64     // reserved in Redis
	granted  int64     // Redis ms of the admission that took it
	sent     time.Time // local clock: when the admission that took it was sent
	expires  time.Time // local clock: no admission from it at or after
	lastUse  time.Time // local clock: the latest admission from it
	requests Window    // the windows of the admission that took it, for the x-ratelimit headers
	tokensW  Window
	used     int      // permits spent
	free     []int    // slots not in use
	gen      []uint64 // per slot: bumped by each request that takes it
	busy     []bool   // per slot: a request holds it
	reserved int64    // the token reservations of the requests running
	spent    int64    // the tokens used by the requests that ended
	ended    bool     // no more admissions from it: it is being given back
	endedAt  int64    // Redis ms of the giving back (0: it failed)
	done     chan struct{}
}

func newPermitLeases(o PermitLeaseOptions) *permitLeases {
	return &permitLeases{opts: o.withDefaults(), replica: randomID(8), shapes: map[string]*leaseShape{}}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// leasable says whether a request may be admitted from a lease: it has subjects and none with
// money (a budget or a credit balance is never leased).
func leasable(req Request) bool {
	if len(req.Subjects) == 0 {
		return false
	}
	for _, s := range req.Subjects {
		if s.Money != nil {
			return false
		}
	}
	return true
}

// shapeKey names a request's set of subjects with their limits: a lease serves requests of one
// shape.
// It is built in one allocation: it is made for every request a lease may serve.
func shapeKey(subjects []Subject) string {
	var b strings.Builder
	n := 0
	for _, s := range subjects {
		n += subjectKeySize(s) + 4*21 + 1 // each limit: a space and up to 20 characters
	}
	b.Grow(n)
	var num [20]byte
	for _, s := range subjects {
		writeSubjectKey(&b, s)
		for _, v := range [...]int64{s.Limits.RPM, s.Limits.TPM, s.Limits.TokensPerDay, s.Limits.Concurrent} {
			b.WriteByte(' ')
			b.Write(strconv.AppendInt(num[:0], v, 10))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// take admits req from the shape's lease when it can. Otherwise it says how many permits the
// Redis admission should ask for (1: this request alone) and, when more than one, the shape is
// marked as granting until granted is called. A lease that has run out is ended: the caller
// gives it back. arrival is false when the request was counted before (a retry): then it is
// not counted again. With grant false it asks for no lease and waits for none. While another
// admission asks for the shape's lease, wait is what closes when it returns: the caller waits
// and takes again rather than go to Redis itself.
func (p *permitLeases) take(key string, req Request, arrival, grant bool) (lease *Lease, res Result, want int, back *giveBack, wait chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Read under the lock: a permit is spent now, and never at or after the lease's expiry.
	now := time.Now()
	if p.calls++; p.calls >= 1024 {
		p.calls = 0
		for k, sh := range p.shapes {
			if sh.cur == nil && sh.granting == nil && now.Sub(sh.last) > 10*time.Second {
				delete(p.shapes, k)
			}
		}
	}
	sh := p.shapes[key]
	if sh == nil {
		sh = &leaseShape{}
		p.shapes[key] = sh
	}
	if arrival {
		if !sh.last.IsZero() {
			sh.gap = (3*sh.gap + now.Sub(sh.last)) / 4
		}
		sh.last = now
	}
	if l := sh.cur; l != nil {
		if !now.Before(l.expires) || l.used >= l.k {
			sh.cur = nil
			if g, ok := p.endLocked(l); ok {
				back = &g
			}
		} else if len(l.free) > 0 && req.Tokens <= l.tokens-l.reserved-l.spent {
			slot := l.free[len(l.free)-1]
			l.free = l.free[:len(l.free)-1]
			l.used++
			l.gen[slot]++
			l.busy[slot] = true
			l.reserved += req.Tokens
			l.lastUse = now
			lease = &Lease{ID: l.id + "." + strconv.Itoa(slot), Subjects: req.Subjects, Reserved: req.Tokens,
				permit: l, slot: slot, gen: l.gen[slot]}
			return lease, Result{Allowed: true, Requests: l.requests, Tokens: l.tokensW, Lease: lease}, 0, nil, nil
		} else {
			return nil, Result{}, 1, nil, nil // this lease is busy: today's path for this request
		}
	}
	if sh.granting != nil && grant {
		return nil, Result{}, 1, back, sh.granting
	}
	want = 1
	if grant && sh.gap > 0 && sh.granting == nil {
		want = min(int(p.opts.Duration/sh.gap), p.opts.MaxPermits)
	}
	if want > 1 {
		sh.granting = make(chan struct{})
	} else {
		want = 1
	}
	return nil, Result{}, want, back, nil
}

// granting returns what closes when the shape's lease being asked for is granted or refused
// (nil when none is being asked for).
func (p *permitLeases) granting(key string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sh := p.shapes[key]; sh != nil {
		return sh.granting
	}
	return nil
}

// granted ends a take that asked for a lease: with k > 1 the lease is the shape's, with this
// request holding its first permit and slot; sent is when the admission was sent (local clock).
func (p *permitLeases) granted(key, id string, req Request, k int, res *Result, redisNow int64, sent time.Time) *permitLease {
	p.mu.Lock()
	defer p.mu.Unlock()
	sh := p.shapes[key]
	if sh != nil && sh.granting != nil {
		close(sh.granting)
		sh.granting = nil
	}
	if k < 2 || !res.Allowed {
		return nil
	}
	l := &permitLease{id: id, tenant: req.Subjects[0].Tenant, subjects: req.Subjects, k: k, tokens: int64(k) * req.Tokens,
		granted: redisNow, sent: sent, expires: sent.Add(p.opts.Duration), lastUse: sent, requests: res.Requests, tokensW: res.Tokens,
		used: 1, gen: make([]uint64, k+1), busy: make([]bool, k+1), reserved: req.Tokens, done: make(chan struct{})}
	for j := k; j >= 2; j-- {
		l.free = append(l.free, j)
	}
	l.gen[1], l.busy[1] = 1, true
	res.Lease.ID = id + ".1"
	res.Lease.permit, res.Lease.slot, res.Lease.gen = l, 1, 1
	if sh != nil {
		sh.cur = l
	}
	return l
}

// end marks l as ended (given back) and returns what the giving back sends, false when it was
// ended before.
func (p *permitLeases) end(l *permitLease) (giveBack, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sh := p.shapes[shapeKey(l.subjects)]; sh != nil && sh.cur == l {
		sh.cur = nil
	}
	return p.endLocked(l)
}

func (p *permitLeases) endLocked(l *permitLease) (giveBack, bool) {
	if l.ended {
		return giveBack{}, false
	}
	l.ended = true
	var free []string
	for j := 1; j <= l.k; j++ {
		if !l.busy[j] {
			free = append(free, strconv.Itoa(j))
		}
	}
	// The permits count from the latest use, at the latest: the admission's Redis time plus
	// the local time since it was sent (which is before Redis read its clock), rounded up.
	last := (l.lastUse.Sub(l.sent) + time.Millisecond - 1).Milliseconds()
	return giveBack{lease: l, used: l.used, spent: l.spent + l.reserved, free: strings.Join(free, " "), last: last}, true
}

// giveBack is the state a lease is given back in.
type giveBack struct {
	lease *permitLease
	used  int
	spent int64
	free  string
	last  int64 // ms after the admission that took it: the latest use (an upper bound)
}

// GiveBack gives back every permit lease this limiter holds (at shutdown: what a replica
// that stops keeps would otherwise count until the window after its end has passed). Requests
// still running keep their slots.
func (r *Redis) GiveBack(ctx context.Context) {
	if r.permits == nil {
		return
	}
	for _, g := range r.permits.tenantLeases("") {
		r.giveBack(ctx, g)
	}
}

// tenantLeases ends the leases of a tenant ("": of every tenant) and returns them.
func (p *permitLeases) tenantLeases(tenant string) []giveBack {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []giveBack
	for _, sh := range p.shapes {
		if l := sh.cur; l != nil && (tenant == "" || l.tenant == tenant) {
			sh.cur = nil
			if g, ok := p.endLocked(l); ok {
				out = append(out, g)
			}
		}
	}
	return out
}

// settleLocal ends a request admitted from a lease. While the lease runs, its slot and tokens go
// back to it and nothing is sent (wait nil; so too for a second settlement). After the lease
// ended, the request holds its slot in Redis like a lease of its own: the caller settles it
// there once the giving back is done (wait closed), with the giving back's time as its
// admission.
func (p *permitLeases) settleLocal(lease *Lease, used Spent) (wait chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := lease.permit
	if !l.busy[lease.slot] || l.gen[lease.slot] != lease.gen {
		return nil // settled before
	}
	l.busy[lease.slot] = false
	if !l.ended {
		l.free = append(l.free, lease.slot)
		l.reserved -= lease.Reserved
		l.spent += max(used.Tokens, 0)
		return nil
	}
	return l.done
}

// admittedAt is, for a request admitted from a lease that ended, the time its reservation was
// moved to: the giving back's (0 when that failed: the lease's slots then expire in Redis).
func (p *permitLeases) admittedAt(l *permitLease) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return l.endedAt
}

// gaveBack records the giving back's outcome and wakes the requests waiting for it.
func (p *permitLeases) gaveBack(l *permitLease, redisNow int64) {
	p.mu.Lock()
	l.endedAt = redisNow
	p.mu.Unlock()
	close(l.done)
}

// giveBackTimeout bounds one giving back.
const giveBackTimeout = time.Second

// giveBack sends lease.lua for g.
func (r *Redis) giveBack(ctx context.Context, g giveBack) {
	l := g.lease
	keys := make([]string, 0, 3*len(l.subjects))
	for _, s := range l.subjects {
		k := subjectKey(s)
		keys = append(keys, k+":r", k+":c", k+":t")
	}
	var now int64
	for range 2 { // once more when the first try fails: it is idempotent
		v, err := leaseScript.Run(ctx, r.c, keys, r.window, r.permits.opts.Duration.Milliseconds(), len(l.subjects), l.id,
			l.k, g.used, l.tokens, g.spent, l.granted, g.free, g.last).Int64Slice()
		if err == nil && len(v) == 2 {
			now = v[1]
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	r.permits.gaveBack(l, now)
}

// giveBackLost gives back the lease id an admission of req asked for (want permits) and got no
// answer about.
func (r *Redis) giveBackLost(id string, req Request, want int) {
	keys := make([]string, 0, 3*len(req.Subjects))
	for _, s := range req.Subjects {
		k := subjectKey(s)
		keys = append(keys, k+":r", k+":c", k+":t")
	}
	ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
	defer cancel()
	_ = leaseScript.Run(ctx, r.c, keys, r.window, r.permits.opts.Duration.Milliseconds(), len(req.Subjects), id,
		-want, 0, req.Tokens, 0, 0, "", 0).Err()
}

// giveBackLater gives l back, unless it was given back before (its timer fires in a goroutine
// of its own).
func (r *Redis) giveBackLater(l *permitLease) {
	if g, ok := r.permits.end(l); ok {
		ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
		defer cancel()
		r.giveBack(ctx, g)
	}
}
