package quota

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scripts share buckets.lua, the token-bucket helpers, prepended to each.
var (
	//go:embed buckets.lua
	bucketsLua string
	//go:embed admit.lua
	admitLua string
	//go:embed settle.lua
	settleLua string
	//go:embed settlefn.lua
	settleFnLua string
	//go:embed renew.lua
	renewLua string
	//go:embed usage.lua
	usageLua string
	//go:embed lease.lua
	leaseLua string

	admitScript  = redis.NewScript(bucketsLua + settleFnLua + admitLua)
	settleScript = redis.NewScript(bucketsLua + settleFnLua + settleLua)
	renewScript  = redis.NewScript(renewLua)
	usageScript  = redis.NewScript(bucketsLua + usageLua)
	leaseScript  = redis.NewScript(bucketsLua + leaseLua)
)

// Redis is the Limiter shared by every replica: one Lua script per admission (one round trip,
// EVALSHA with an EVAL fallback) checks and consumes every dimension of every subject
// atomically, with Redis TIME as the one clock. Works with a single node, Sentinel and
// Cluster: all keys of one request carry the tenant's hash tag, so they live in one slot.
//
// Key layout, per subject (see subjectKey):
//
//	{t:<tenant>}:q:<kind>:<id>[@<model>][#<endpoint>]:r   ZSET  RPM log: request id → admission ms
//	{t:<tenant>}:q:<kind>:<id>[@<model>][#<endpoint>]:c   ZSET  leases: lease id → expiry ms
//	{t:<tenant>}:q:<kind>:<id>[@<model>][#<endpoint>]:t   HASH  token buckets per second, running sum, day
//	{t:<tenant>}:q:<kind>:<id>[@<model>][#<endpoint>]:m   HASH  money: spend today and this month, credit
//	                                               charges (subjects with Money only)
//	{t:<tenant>}:q:<kind>:<id>[@<model>][#<endpoint>]:rl  ZSET  lease log: lease id:count → stamp ms
//	                                               (permit leases only, see buckets.lua)
//	{t:<tenant>}:q:~replicas                       ZSET  replicas taking leases → last lease ms
//
// Every key has an expiry, refreshed by the first admission of each second (admit.lua), so the
// keys of an idle subject vanish on their own. Ids are percent-escaped (escapeKeyPart).
//
// With permit leases (LimiterOptions.PermitLeases), an admission of a busy set of subjects may
// take a batch of permits that this limiter spends locally for a short while (see
// PermitLeaseOptions and admit.lua): a request admitted from one costs no round trip, and its
// settlement none either while the lease runs; the lease is given back (lease.lua) when it is
// spent or expires.
type Redis struct {
	c        redis.UniversalClient
	window   int64 // ms, a whole number of seconds
	leaseTTL int64 // ms
	settles  settleQueues
	permits  *permitLeases // nil: no permit leases
	// admitTrip and settleTrip run what an admission and a settlement do past a permit lease
	// (nil: as is): Resilient bounds it there and records its latency, so that a request
	// admitted and settled from a lease, with no call to Redis, pays for neither.
	admitTrip, settleTrip func(ctx context.Context, f func(context.Context) error) error
}

var (
	_ Limiter        = (*Redis)(nil)
	_ UsageReader    = (*Redis)(nil)
	_ SessionClearer = (*Redis)(nil)
)

// NewRedis returns a Limiter on c (see NewRedisClient). An admission waits as long as Redis
// does: in the gateway, wrap it in Resilient for a deadline and a fallback. opts.Now is ignored.
func NewRedis(c redis.UniversalClient, opts LimiterOptions) *Redis {
	opts = opts.withDefaults()
	r := &Redis{c: c, window: opts.Window.Milliseconds(), leaseTTL: opts.LeaseTTL.Milliseconds()}
	if opts.PermitLeases.Enabled {
		// A lease's slots must not expire in Redis while it admits (half the lease TTL at
		// most), and its tokens' bucket must stay in the window while it runs (a quarter).
		p := opts.PermitLeases.withDefaults()
		p.Duration = max(min(p.Duration, opts.LeaseTTL/2, opts.Window/4).Truncate(time.Millisecond), time.Millisecond)
		r.permits = newPermitLeases(p)
	}
	return r
}

// Admit implements Limiter in one round trip (admit.lua), which also carries the settlements
// of the tenant queued by then (see Settle).
func (r *Redis) Admit(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	if len(req.Subjects) == 0 {
		return Result{Allowed: true, Lease: &Lease{ID: req.ID, Reserved: req.Tokens}}, nil
	}
	shape, want, wait := "", 1, chan struct{}(nil)
	if r.permits != nil && leasable(req) {
		shape = shapeKey(req.Subjects)
		var lease *Lease
		var res Result
		var back *giveBack
		lease, res, want, back, wait = r.permits.take(shape, req, true, true)
		r.giveBackAsync(back)
		if lease != nil {
			return res, nil // from the shape's lease: no call
		}
	}
	if r.admitTrip == nil {
		return r.admitShared(ctx, req, shape, want, wait)
	}
	var res Result
	err := r.admitTrip(ctx, func(ctx context.Context) (err error) {
		res, err = r.admitShared(ctx, req, shape, want, wait)
		return err
	})
	return res, err
}

// admitShared is Admit past the shape's lease (shape "" when req takes none), after its first
// take answered want and wait: it waits for a lease being asked for by another admission, or
// asks Redis.
func (r *Redis) admitShared(ctx context.Context, req Request, shape string, want int, wait chan struct{}) (Result, error) {
	leaseID := ""
	if shape != "" {
		for range 3 {
			if wait == nil {
				break
			}
			// Another admission is asking for the shape's lease: its answer comes sooner than
			// this request's own round trip would.
			select {
			case <-wait:
			case <-ctx.Done():
				return Result{}, fmt.Errorf("quota: redis admit: %w", ctx.Err())
			}
			lease, res, w, back, next := r.permits.take(shape, req, false, true)
			r.giveBackAsync(back)
			if lease != nil {
				return res, nil
			}
			want, wait = w, next
		}
		if want > 1 {
			leaseID = "~" + randomID(8)
		}
	}
	sent := time.Now() // a lease runs from here, on the local clock: before Redis reads its own
	res, now, k, err := r.admit(ctx, req, want, leaseID)
	if want > 1 && err != nil {
		// Redis may have run the admission and taken the lease: it is given back once a late
		// run would have happened (a no-op when none did).
		time.AfterFunc(r.permits.opts.Duration, func() { r.giveBackLost(leaseID, req, want) })
	}
	if want > 1 {
		if l := r.permits.granted(shape, leaseID, req, k, &res, now, sent); l != nil {
			r.settles.unadmitted(req.Subjects[0].Tenant) // its settlement stays here
			time.AfterFunc(r.permits.opts.Duration, func() { r.giveBackLater(l) })
		}
	} else if err == nil && !res.Allowed && shape != "" {
		// Refused while this replica may hold permits of the shape (a lease taken, or being
		// taken, by a concurrent admission): they are spent before a request is refused.
		if wait := r.permits.granting(shape); wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return res, nil
			}
		}
		lease, lres, _, back, _ := r.permits.take(shape, req, false, false)
		r.giveBackAsync(back)
		if lease != nil {
			return lres, nil
		}
	}
	return res, err
}

// giveBackAsync gives back an ended lease (nil: none) in the background.
func (r *Redis) giveBackAsync(back *giveBack) {
	if back == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
		defer cancel()
		r.giveBack(ctx, *back)
	}()
}

// admit runs admit.lua for req, asking for want permits (a lease named leaseID when more than
// one), and returns the result, Redis's clock and the permits granted.
func (r *Redis) admit(ctx context.Context, req Request, want int, leaseID string) (Result, int64, int, error) {
	tenant := req.Subjects[0].Tenant
	carried := r.settles.admitted(tenant, time.Now())
	keys := make([]string, 0, 4*len(req.Subjects)+3*len(carried))
	args := make([]any, 0, 12+13*len(req.Subjects)+7*len(carried))
	args = append(args, req.ID, req.Tokens, r.window, r.leaseTTL, leaseTombstone.Milliseconds(), min(req.Cost, MaxMoney), len(req.Subjects))
	leaseMs, replica := int64(0), ""
	if r.permits != nil {
		leaseMs, replica = r.permits.opts.Duration.Milliseconds(), r.permits.replica
	}
	args = append(args, want, leaseID, replica, leaseMs)
	for _, s := range req.Subjects {
		k := subjectKey(s)
		keys = append(keys, k+":r", k+":c", k+":t", k+":m")
		args = append(args, s.Limits.RPM, s.Limits.TPM, s.Limits.TokensPerDay, s.Limits.Concurrent)
		args = appendMoney(args, s.Money)
	}
	args = append(args, len(carried))
	for _, j := range carried {
		keys = append(keys, j.keys...)
		args = append(args, j.args...)
	}
	v, err := admitScript.Run(ctx, r.c, keys, args...).Int64Slice()
	if err == nil && len(v) != 12+len(carried) {
		err = fmt.Errorf("%d values in reply, want %d", len(v), 12+len(carried))
	}
	if err != nil && len(carried) > 0 {
		// The call may or may not have applied the carried settlements: they are sent again on
		// their own (a no-op where they were applied), so an admission that failed, or whose
		// context ended, does not fail them.
		go func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleSendTimeout)
			defer cancel()
			r.sendSettles(sctx, carried)
		}()
	} else {
		finish(carried, nil)
	}
	if err != nil {
		r.settles.unadmitted(tenant)
		return Result{}, 0, 0, fmt.Errorf("quota: redis admit: %w", err)
	}
	res := Result{
		Allowed:  v[0] == 0,
		Requests: Window{Limit: v[4], Remaining: v[5], Reset: ms(v[6])},
		Tokens:   Window{Limit: v[7], Remaining: v[8], Reset: ms(v[9])},
	}
	if res.Allowed {
		res.Lease = &Lease{ID: req.ID, Subjects: req.Subjects, Reserved: req.Tokens, ReservedCost: min(req.Cost, MaxMoney), AdmittedAt: v[3]}
		return res, v[3], int(v[10]), nil
	}
	r.settles.unadmitted(tenant)
	if v[0] > int64(len(req.Subjects)) || v[1] < 1 || v[1] > int64(len(dimensions)) {
		return Result{}, 0, 0, fmt.Errorf("quota: redis admit: refusal %d/%d out of range", v[0], v[1])
	}
	res.Subject = req.Subjects[v[0]-1].Key()
	res.Dimension = dimensions[v[1]-1]
	res.RetryAfter = ms(v[2])
	if v[1] > 4 {
		res.RetryAfter = moneyRetry(res.Dimension, v[3])
	}
	return res, v[3], 0, nil
}

// appendMoney appends a subject's nine money arguments of admit.lua, each capped at MaxMoney.
func appendMoney(args []any, m *Money) []any {
	if m == nil {
		return append(args, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	c := func(v int64) int64 { return max(min(v, MaxMoney), -MaxMoney) }
	credit := 0
	if m.Credit {
		credit = 1
	}
	return append(args, 1, c(m.BudgetDay), c(m.BudgetMonth), m.Day, c(m.SpentDay), c(m.SpentMonth),
		credit, c(m.Balance), c(m.Charged))
}

// Renew implements Limiter: one pipeline for all the leases (renew.lua per lease; a Cluster
// client splits the pipeline by node).
func (r *Redis) Renew(ctx context.Context, leases []*Lease) error {
	cmds, err := r.renew(ctx, leases, renewScript.EvalSha)
	if err != nil && hasNoScript(cmds) {
		// The script cache is empty (a restarted or new node): send the source. Renewing twice
		// is harmless.
		_, err = r.renew(ctx, leases, renewScript.Eval)
	}
	if err != nil {
		return fmt.Errorf("quota: redis renew: %w", err)
	}
	return nil
}

type scriptCall func(ctx context.Context, c redis.Scripter, keys []string, args ...any) *redis.Cmd

func (r *Redis) renew(ctx context.Context, leases []*Lease, call scriptCall) ([]*redis.Cmd, error) {
	pipe := r.c.Pipeline()
	var cmds []*redis.Cmd
	for _, l := range leases {
		if l == nil || len(l.Subjects) == 0 {
			continue
		}
		keys := make([]string, len(l.Subjects))
		for i, s := range l.Subjects {
			keys[i] = subjectKey(s) + ":c"
		}
		cmds = append(cmds, call(ctx, pipe, keys, l.ID, r.leaseTTL, leaseTombstone.Milliseconds()))
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

func hasNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if errors.Is(c.Err(), redis.ErrNoScript) || redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// Usage implements UsageReader (usage.lua: read only, Redis TIME as the clock). The settlements
// of the tenant this limiter still holds are sent first, so a caller sees what it settled.
func (r *Redis) Usage(ctx context.Context, s Subject) (Usage, error) {
	if r.permits != nil {
		// Leases count whole while they run: they are given back first, so a caller sees the
		// requests that were admitted and the slots that are held.
		for _, g := range r.permits.tenantLeases(s.Tenant) {
			r.giveBack(ctx, g)
		}
	}
	if jobs := r.settles.take(s.Tenant, 0); len(jobs) > 0 {
		r.sendSettles(ctx, jobs)
	}
	k := subjectKey(s)
	v, err := usageScript.Run(ctx, r.c, []string{k + ":r", k + ":c", k + ":t"}, r.window).Int64Slice()
	if err != nil {
		return Usage{}, fmt.Errorf("quota: redis usage: %w", err)
	}
	if len(v) != 4 {
		return Usage{}, fmt.Errorf("quota: redis usage: %d values in reply, want 4", len(v))
	}
	return Usage{Requests: v[0], Concurrent: v[1], TokensMinute: v[2], TokensDay: v[3]}, nil
}

// ClearSession implements SessionClearer. The keys share a slot, so one DEL does it (a session
// has no money hash).
func (r *Redis) ClearSession(ctx context.Context, tenant, sessionID string) error {
	k := subjectKey(Subject{Kind: KindSession, ID: sessionID, Tenant: tenant})
	if err := r.c.Del(ctx, k+":r", k+":c", k+":t", k+":rl").Err(); err != nil {
		return fmt.Errorf("quota: redis clear session: %w", err)
	}
	return nil
}

// Ping checks that Redis answers; Resilient probes with it while Redis is down.
func (r *Redis) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

// subjectKey is the prefix of a subject's keys: `{t:<tenant>}:q:<kind>:<id>[@<model>][#<endpoint>]`. The
// tenant's hash tag puts every key of one request in one Cluster slot. Each part is escaped so
// that no id can end the hash tag early or pose as another subject's key.
func subjectKey(s Subject) string {
	var b strings.Builder
	b.Grow(subjectKeySize(s))
	writeSubjectKey(&b, s)
	return b.String()
}

// subjectKeySize is the length of s's key when no byte of it needs escaping.
func subjectKeySize(s Subject) int {
	return len(s.Tenant) + len(s.Kind) + len(s.ID) + len(s.Model) + len(s.Endpoint) + 12
}

// writeSubjectKey writes subjectKey(s) to b.
func writeSubjectKey(b *strings.Builder, s Subject) {
	b.WriteString("{t:")
	escapeKeyPart(b, s.Tenant)
	b.WriteString("}:q:")
	escapeKeyPart(b, string(s.Kind))
	b.WriteByte(':')
	escapeKeyPart(b, s.ID)
	if s.Model != "" {
		b.WriteByte('@')
		escapeKeyPart(b, s.Model)
	}
	if s.Endpoint != "" {
		b.WriteByte('#')
		escapeKeyPart(b, s.Endpoint)
	}
}

// escapeKeyPart percent-encodes the bytes that structure a key: the hash tag braces, the
// separators ':', '@' and '#', and '%' itself.
func escapeKeyPart(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{', '}', ':', '@', '#', '%':
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
}
