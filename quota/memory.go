package quota

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Memory is the in-process Limiter of the embedded default (one gateway, no Redis) and the local
// fallback of Resilient. It keeps the same state as the Redis scripts — a log of admission times,
// leases with an expiry, one-second token buckets and a day counter per subject — so the
// quotatest suite holds for both. One mutex guards everything: a decision is a few map lookups,
// far shorter than the request it admits.
type Memory struct {
	window   int64 // ms, a whole number of seconds
	seconds  int64 // window in seconds: the number of token buckets
	leaseTTL int64 // ms
	now      func() time.Time

	mu       sync.Mutex
	subjects map[string]*memSubject // by subjectKey: unlike Subject.Key, it tells "u@m" from u on m
}

var (
	_ Limiter        = (*Memory)(nil)
	_ UsageReader    = (*Memory)(nil)
	_ SessionClearer = (*Memory)(nil)
)

// memSubject is the state of one subject. Requests and tokens are recorded for every subject,
// limited or not, so Usage can report them.
type memSubject struct {
	reqs      []int64          // admission times (Unix ms) in the window, oldest first
	leases    map[string]int64 // lease id → expiry (Unix ms), kept leaseTombstone past expiry
	buckets   map[int64]int64  // Unix second → tokens, seconds in the window only
	day       int64            // UTC day (days since the epoch) that dayTokens counts
	dayTokens int64
	money     memMoney
}

// memMoney is a subject's money counters (nano-USD), as admit.lua keeps them in the :m hash.
type memMoney struct {
	day, spentDay     int64 // UTC day and the spend counted on it
	month, spentMonth int64 // month (monthOf) and the spend counted in it
	charged           int64 // credit charges and reservations, on the ledger's Charged scale
	hasCharged        bool
	at                int64 // last change (Unix ms): Sweep keeps the subject a while after
}

// moneyKeep is how long Sweep keeps an idle subject's money counters: long enough for the costs
// they hold to reach the ledger, whose figures take over after.
const moneyKeep = time.Minute

// NewMemory returns an empty in-memory limiter. Call Sweep now and then to forget idle subjects.
func NewMemory(opts LimiterOptions) *Memory {
	opts = opts.withDefaults()
	return &Memory{
		window:   opts.Window.Milliseconds(),
		seconds:  int64(opts.Window / time.Second),
		leaseTTL: opts.LeaseTTL.Milliseconds(),
		now:      opts.Now,
		subjects: make(map[string]*memSubject),
	}
}

// Admit implements Limiter.
func (m *Memory) Admit(_ context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	states := make([]*memSubject, len(req.Subjects))
	var res Result
	for i, s := range req.Subjects {
		st := m.subject(subjectKey(s))
		m.prune(st, now)
		states[i] = st
		if res.Dimension == "" {
			if dim, retry := m.check(st, s.Limits, req.Tokens, now); dim != "" {
				res.Dimension, res.Subject, res.RetryAfter = dim, s.Key(), ms(retry)
			} else if dim := st.money.check(s.Money, now); dim != "" {
				res.Dimension, res.Subject, res.RetryAfter = dim, s.Key(), moneyRetry(dim, now)
			}
		}
	}
	res.Allowed = res.Dimension == ""
	if res.Allowed {
		nowSec, today := now/1000, now/dayMillis
		for i, st := range states {
			if mo := req.Subjects[i].Money; mo != nil {
				st.money.reserve(mo, req.Cost, now)
			}
			st.reqs = append(st.reqs, now)
			st.leases[req.ID] = now + m.leaseTTL
			if req.Tokens > 0 {
				st.buckets[nowSec] += req.Tokens
			}
			if st.day != today {
				st.day, st.dayTokens = today, 0
			}
			st.dayTokens += req.Tokens
		}
		res.Lease = &Lease{ID: req.ID, Subjects: req.Subjects, Reserved: req.Tokens, ReservedCost: req.Cost, AdmittedAt: now}
	}
	m.windows(&res, req.Subjects, states, now)
	return res, nil
}

// check returns the first dimension of one subject that refuses a request of tokens, and the
// milliseconds until it has room (0 when unknown or never). Mirrors admit.lua.
func (m *Memory) check(st *memSubject, l Limits, tokens, now int64) (string, int64) {
	used := int64(len(st.reqs))
	if l.RPM > 0 && used >= l.RPM {
		// The (used-limit+1)-th oldest admission must leave the window first.
		return DimRPM, st.reqs[used-l.RPM] + m.window - now
	}
	if l.TPM > 0 {
		if tokens > l.TPM {
			return DimTPM, 0
		}
		if inWindow := st.tokens(); inWindow+tokens > l.TPM {
			return DimTPM, m.tokensFreedIn(st, inWindow+tokens-l.TPM, now)
		}
	}
	if l.TokensPerDay > 0 {
		if tokens > l.TokensPerDay {
			return DimTokensPerDay, 0
		}
		if st.today(now)+tokens > l.TokensPerDay {
			return DimTokensPerDay, (now/dayMillis+1)*dayMillis - now
		}
	}
	if l.Concurrent > 0 && st.live(now) >= l.Concurrent {
		return DimConcurrent, 0
	}
	return "", 0
}

// tokensFreedIn returns the milliseconds until at least need tokens have left the window: the
// buckets leave oldest first, bucket s when the clock reaches second s+window.
func (m *Memory) tokensFreedIn(st *memSubject, need, now int64) int64 {
	secs := make([]int64, 0, len(st.buckets))
	for s := range st.buckets {
		secs = append(secs, s)
	}
	slices.Sort(secs)
	for _, s := range secs {
		if need -= st.buckets[s]; need <= 0 {
			return (s+m.seconds)*1000 - now
		}
	}
	return 0 // unreachable while need <= tokens in the window
}

// windows fills Result.Requests and Result.Tokens from the state after the decision: the subject
// with the lowest remaining count (the first on a tie) among those with a limit. Reset is when
// the newest admission (or token bucket) leaves the window, i.e. when the window is empty.
func (m *Memory) windows(res *Result, subjects []Subject, states []*memSubject, now int64) {
	reqAt, tokAt := -1, -1
	for i, s := range subjects {
		st := states[i]
		if l := s.Limits.RPM; l > 0 {
			if rem := max(0, l-int64(len(st.reqs))); reqAt < 0 || rem < res.Requests.Remaining {
				reqAt, res.Requests = i, Window{Limit: l, Remaining: rem}
			}
		}
		if l := s.Limits.TPM; l > 0 {
			if rem := max(0, l-st.tokens()); tokAt < 0 || rem < res.Tokens.Remaining {
				tokAt, res.Tokens = i, Window{Limit: l, Remaining: rem}
			}
		}
	}
	if reqAt >= 0 {
		if reqs := states[reqAt].reqs; len(reqs) > 0 {
			res.Requests.Reset = ms(reqs[len(reqs)-1] + m.window - now)
		}
	}
	if tokAt >= 0 {
		newest := int64(-1)
		for s, v := range states[tokAt].buckets {
			if v > 0 && s > newest {
				newest = s
			}
		}
		if newest >= 0 {
			res.Tokens.Reset = ms((newest+m.seconds)*1000 - now)
		}
	}
}

// Settle implements Limiter. The lease's presence in any of its subjects is what makes the first
// Settle count and a second one a no-op.
func (m *Memory) Settle(_ context.Context, lease *Lease, used Spent) error {
	if lease == nil {
		return nil
	}
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	held := false
	for _, s := range lease.Subjects {
		if st := m.subjects[subjectKey(s)]; st != nil {
			if _, ok := st.leases[lease.ID]; ok {
				delete(st.leases, lease.ID)
				held = true
			}
		}
	}
	if !held {
		return nil
	}
	for _, s := range lease.Subjects {
		if s.Money != nil {
			m.subject(subjectKey(s)).money.settle(s.Money, lease, used, now)
		}
	}
	diff := max(used.Tokens, 0) - lease.Reserved
	if diff == 0 {
		return nil
	}
	admSec, nowSec := lease.AdmittedAt/1000, now/1000
	for _, s := range lease.Subjects {
		st := m.subject(subjectKey(s))
		m.prune(st, now)
		switch {
		case admSec > nowSec-m.seconds: // the reservation's bucket is still in the window
			st.buckets[admSec] = max(0, st.buckets[admSec]+diff)
			if st.buckets[admSec] == 0 {
				delete(st.buckets, admSec)
			}
		case diff > 0: // a refund to a bucket that left the window is moot; a charge is not
			st.buckets[nowSec] += diff
		}
		if lease.AdmittedAt/dayMillis == now/dayMillis {
			st.dayTokens = max(0, st.today(now)+diff)
			st.day = now / dayMillis
		}
	}
	return nil
}

// Renew implements Limiter. An expired lease is not revived: its slot may already be taken.
func (m *Memory) Renew(_ context.Context, leases []*Lease) error {
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range leases {
		if l == nil {
			continue
		}
		for _, s := range l.Subjects {
			if st := m.subjects[subjectKey(s)]; st != nil {
				if exp, ok := st.leases[l.ID]; ok && exp > now {
					st.leases[l.ID] = now + m.leaseTTL
				}
			}
		}
	}
	return nil
}

// Usage implements UsageReader.
func (m *Memory) Usage(_ context.Context, s Subject) (Usage, error) {
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.subjects[subjectKey(s)]
	if st == nil {
		return Usage{}, nil
	}
	m.prune(st, now)
	return Usage{
		Requests:     int64(len(st.reqs)),
		Concurrent:   st.live(now),
		TokensMinute: st.tokens(),
		TokensDay:    st.today(now),
	}, nil
}

// ClearSession implements SessionClearer.
func (m *Memory) ClearSession(_ context.Context, tenant, sessionID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subjects, subjectKey(Subject{Kind: KindSession, ID: sessionID, Tenant: tenant}))
	return nil
}

// Sweep forgets subjects with nothing left to remember: no admission or tokens in the window, no
// lease (live or tombstone) and no tokens today. Memory then stays bounded by the subjects
// active today, rather than every subject ever seen; forgetting one with tokens today would
// reset its daily limit.
func (m *Memory) Sweep() {
	now := m.now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, st := range m.subjects {
		m.prune(st, now)
		for id, exp := range st.leases {
			if exp <= now-leaseTombstone.Milliseconds() {
				delete(st.leases, id)
			}
		}
		if len(st.reqs) == 0 && len(st.leases) == 0 && len(st.buckets) == 0 && st.today(now) == 0 &&
			now-st.money.at >= moneyKeep.Milliseconds() {
			delete(m.subjects, k)
		}
	}
}

func (m *Memory) subject(key string) *memSubject {
	st := m.subjects[key]
	if st == nil {
		st = &memSubject{leases: make(map[string]int64), buckets: make(map[int64]int64)}
		m.subjects[key] = st
	}
	return st
}

// prune drops what left the window: admissions at or before now-window (the window is
// (now-window, now]) and buckets of seconds at or before nowSec-seconds. Tombstones are left to
// Sweep, so an admission never walks the leases of a subject without a concurrency limit.
func (m *Memory) prune(st *memSubject, now int64) {
	i := 0
	for i < len(st.reqs) && st.reqs[i] <= now-m.window {
		i++
	}
	st.reqs = st.reqs[i:] // append reallocates once the front is used up, freeing the old array
	for s := range st.buckets {
		if s <= now/1000-m.seconds {
			delete(st.buckets, s)
		}
	}
}

// live counts the leases that have not expired.
func (st *memSubject) live(now int64) int64 {
	var n int64
	for _, exp := range st.leases {
		if exp > now {
			n++
		}
	}
	return n
}

// tokens sums the buckets in the window (prune has dropped the others).
func (st *memSubject) tokens() int64 {
	var n int64
	for _, v := range st.buckets {
		n += v
	}
	return n
}

// today returns the tokens counted on the current UTC day.
func (st *memSubject) today(now int64) int64 {
	if st.day != now/dayMillis {
		return 0
	}
	return st.dayTokens
}

// spent returns the spend of the current day and month: the larger of the counter and the
// ledger's figure, each only if it is for the current period.
func (mm *memMoney) spent(mo *Money, now int64) (day, month int64) {
	today := now / dayMillis
	thisMonth := monthOf(today)
	if mm.day == today {
		day = mm.spentDay
	}
	if mm.month == thisMonth {
		month = mm.spentMonth
	}
	if mo.Day == today {
		day = max(day, mo.SpentDay)
	}
	if monthOf(mo.Day) == thisMonth {
		month = max(month, mo.SpentMonth)
	}
	return day, month
}

// available is what the credit account can still pay: the ledger's balance less the charges and
// reservations it has not applied yet.
func (mm *memMoney) available(mo *Money) (avail, charged int64) {
	charged = mo.Charged
	if mm.hasCharged {
		charged = max(charged, mm.charged)
	}
	return mo.Balance - (charged - mo.Charged), charged
}

// check returns the money dimension that refuses the request, or "": a budget already spent, or
// a balance already used up, counting the reservations in flight. Mirrors admit.lua.
func (mm *memMoney) check(mo *Money, now int64) string {
	if mo == nil {
		return ""
	}
	day, month := mm.spent(mo, now)
	if mo.BudgetDay > 0 && day >= mo.BudgetDay {
		return DimBudgetDay
	}
	if mo.BudgetMonth > 0 && month >= mo.BudgetMonth {
		return DimBudgetMonth
	}
	if mo.Credit {
		if avail, _ := mm.available(mo); avail <= 0 {
			return DimCredit
		}
	}
	return ""
}

// reserve counts an admitted request's cost reservation.
func (mm *memMoney) reserve(mo *Money, cost, now int64) {
	day, month := mm.spent(mo, now)
	mm.day, mm.spentDay = now/dayMillis, day+cost
	mm.month, mm.spentMonth = monthOf(mm.day), month+cost
	if mo.Credit {
		_, charged := mm.available(mo)
		mm.charged, mm.hasCharged = charged+cost, true
	}
	mm.at = now
}

// settle replaces the reservation with the real cost: in the spend of the periods the request
// was admitted in, if they are still current (a past period's counter is gone; the ledger has
// the cost), and in the credit counter, with the part that is charged.
func (mm *memMoney) settle(mo *Money, lease *Lease, used Spent, now int64) {
	diff := max(used.Cost, 0) - lease.ReservedCost
	admDay := lease.AdmittedAt / dayMillis
	if mm.day == admDay && admDay == now/dayMillis {
		mm.spentDay = max(0, mm.spentDay+diff)
	}
	if admMonth := monthOf(admDay); mm.month == admMonth && admMonth == monthOf(now/dayMillis) {
		mm.spentMonth = max(0, mm.spentMonth+diff)
	}
	if mo.Credit && mm.hasCharged {
		mm.charged += max(used.Charge, 0) - lease.ReservedCost
	}
	mm.at = now
}
