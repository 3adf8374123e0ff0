package quota

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	//go:embed renew.lua
	renewLua string
	//go:embed usage.lua
	usageLua string

	admitScript  = redis.NewScript(bucketsLua + admitLua)
	settleScript = redis.NewScript(bucketsLua + settleLua)
	renewScript  = redis.NewScript(renewLua)
	usageScript  = redis.NewScript(bucketsLua + usageLua)
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
//
// Every key has an expiry, refreshed by the first admission of each second (admit.lua), so the
// keys of an idle subject vanish on their own. Ids are percent-escaped (escapeKeyPart).
type Redis struct {
	c        redis.UniversalClient
	window   int64 // ms, a whole number of seconds
	leaseTTL int64 // ms
	settles  settleBatcher
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
	return &Redis{c: c, window: opts.Window.Milliseconds(), leaseTTL: opts.LeaseTTL.Milliseconds()}
}

// Admit implements Limiter in one round trip (admit.lua).
func (r *Redis) Admit(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	if len(req.Subjects) == 0 {
		return Result{Allowed: true, Lease: &Lease{ID: req.ID, Reserved: req.Tokens}}, nil
	}
	keys := make([]string, 0, 4*len(req.Subjects))
	args := make([]any, 0, 6+13*len(req.Subjects))
	args = append(args, req.ID, req.Tokens, r.window, r.leaseTTL, leaseTombstone.Milliseconds(), min(req.Cost, MaxMoney))
	for _, s := range req.Subjects {
		k := subjectKey(s)
		keys = append(keys, k+":r", k+":c", k+":t", k+":m")
		args = append(args, s.Limits.RPM, s.Limits.TPM, s.Limits.TokensPerDay, s.Limits.Concurrent)
		args = appendMoney(args, s.Money)
	}
	v, err := admitScript.Run(ctx, r.c, keys, args...).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("quota: redis admit: %w", err)
	}
	if len(v) != 10 {
		return Result{}, fmt.Errorf("quota: redis admit: %d values in reply, want 10", len(v))
	}
	res := Result{
		Allowed:  v[0] == 0,
		Requests: Window{Limit: v[4], Remaining: v[5], Reset: ms(v[6])},
		Tokens:   Window{Limit: v[7], Remaining: v[8], Reset: ms(v[9])},
	}
	if res.Allowed {
		res.Lease = &Lease{ID: req.ID, Subjects: req.Subjects, Reserved: req.Tokens, ReservedCost: min(req.Cost, MaxMoney), AdmittedAt: v[3]}
		return res, nil
	}
	if v[0] > int64(len(req.Subjects)) || v[1] < 1 || v[1] > int64(len(dimensions)) {
		return Result{}, fmt.Errorf("quota: redis admit: refusal %d/%d out of range", v[0], v[1])
	}
	res.Subject = req.Subjects[v[0]-1].Key()
	res.Dimension = dimensions[v[1]-1]
	res.RetryAfter = ms(v[2])
	if v[1] > 4 {
		res.RetryAfter = moneyRetry(res.Dimension, v[3])
	}
	return res, nil
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

// Settle implements Limiter (settle.lua). Settlements are pipelined: concurrent calls are sent
// together in one round trip (group commit, see settleBatcher), so under load settlement costs a
// fraction of a round trip per request; a lone call is one round trip.
func (r *Redis) Settle(ctx context.Context, lease *Lease, used Spent) error {
	if lease == nil || len(lease.Subjects) == 0 {
		return nil
	}
	if err := r.settles.submit(ctx, r.settleJob(lease, used), r.sendSettles); err != nil {
		return fmt.Errorf("quota: redis settle: %w", err)
	}
	return nil
}

// settleNow sends the settlements at once in one pipeline, outside the group commit, and
// returns each one's error: Resilient replays its queue with it.
func (r *Redis) settleNow(ctx context.Context, leases []*Lease, used []Spent) []error {
	errs := make([]error, len(leases))
	jobs := make([]*settleJob, 0, len(leases))
	idx := make([]int, 0, len(leases))
	for i, l := range leases {
		if l != nil && len(l.Subjects) > 0 {
			jobs = append(jobs, r.settleJob(l, used[i]))
			idx = append(idx, i)
		}
	}
	if len(jobs) == 0 {
		return errs
	}
	r.sendSettles(ctx, jobs)
	for k, j := range jobs {
		if err := <-j.result; err != nil {
			errs[idx[k]] = fmt.Errorf("quota: redis settle: %w", err)
		}
	}
	return errs
}

// settleJob builds the settle.lua call of a lease. A lease whose AdmittedAt is 0 undoes an
// admission whose reply was lost (see settle.lua).
func (r *Redis) settleJob(lease *Lease, used Spent) *settleJob {
	keys := make([]string, 0, 3*len(lease.Subjects))
	kinds := make([]byte, len(lease.Subjects))
	for i, s := range lease.Subjects {
		k := subjectKey(s)
		keys = append(keys, k+":c", k+":t", k+":m")
		switch {
		case s.Money == nil:
			kinds[i] = '0'
		case s.Money.Credit:
			kinds[i] = '2'
		default:
			kinds[i] = '1'
		}
	}
	diff := max(used.Tokens, 0) - lease.Reserved
	costDiff := min(max(used.Cost, 0), MaxMoney) - lease.ReservedCost
	chargeDiff := min(max(used.Charge, 0), MaxMoney) - lease.ReservedCost
	return &settleJob{keys: keys, args: []any{lease.ID, diff, lease.AdmittedAt, r.window, costDiff, chargeDiff, string(kinds), r.leaseTTL},
		result: make(chan error, 1), lead: make(chan struct{}, 1)}
}

// settleJob is one queued settlement; result gets its outcome, lead makes its caller the next
// sender.
type settleJob struct {
	keys   []string
	args   []any
	result chan error
	lead   chan struct{}
	gone   bool // the caller stopped waiting (guarded by settleBatcher.mu)
}

// settleBatcher is a group commit without a goroutine of its own: the first caller to find no
// batch in flight sends everything queued as one pipeline; callers arriving meanwhile queue up,
// and when the batch returns, the first of them still waiting is handed the lead and sends the
// next batch. A caller whose context ends stops waiting, but its job stays queued and is sent.
// settleSendTimeout bounds one settlement pipeline. It runs after the answers have left, so it
// may take longer than an admission; a lease it fails to release expires with its TTL, unless
// Resilient replays the settlement.
const settleSendTimeout = time.Second

type settleBatcher struct {
	mu      sync.Mutex
	pending []*settleJob
	busy    bool
}

func (b *settleBatcher) submit(ctx context.Context, job *settleJob, send func(context.Context, []*settleJob)) error {
	b.mu.Lock()
	b.pending = append(b.pending, job)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	if !lead {
		select {
		case err := <-job.result:
			return err
		case <-job.lead:
		case <-ctx.Done():
			b.mu.Lock()
			select {
			case <-job.lead: // handed the lead just now: it must be taken
				b.mu.Unlock()
			default:
				job.gone = true
				b.mu.Unlock()
				return ctx.Err()
			}
		}
	}
	// The batch carries other callers' settlements: it is sent under a bound of its own, in a
	// goroutine (one per batch), so no caller waits past its own context — a connection whose
	// handler waits here cannot take its next request — while every queued settlement still goes
	// out.
	go func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleSendTimeout)
		defer cancel()
		b.mu.Lock()
		for {
			batch := b.pending
			b.pending = nil
			b.mu.Unlock()
			send(sctx, batch)
			b.mu.Lock()
			if next := firstWaiting(b.pending); next != nil {
				next.lead <- struct{}{}
				break
			}
			if len(b.pending) == 0 {
				b.busy = false
				break
			}
			// only abandoned jobs are queued: send them too
		}
		b.mu.Unlock()
	}()
	select {
	case err := <-job.result: // the leader's own job is in the first batch
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func firstWaiting(jobs []*settleJob) *settleJob {
	for _, j := range jobs {
		if !j.gone {
			return j
		}
	}
	return nil
}

// sendSettles runs one pipeline of settle.lua calls and hands each job its result. A node
// without the script (restarted) gets the source in a second pipeline.
func (r *Redis) sendSettles(ctx context.Context, jobs []*settleJob) {
	run := func(call scriptCall) ([]*redis.Cmd, error) {
		pipe := r.c.Pipeline()
		cmds := make([]*redis.Cmd, len(jobs))
		for i, j := range jobs {
			cmds[i] = call(ctx, pipe, j.keys, j.args...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run(settleScript.EvalSha)
	if err != nil && hasNoScript(cmds) {
		cmds, _ = run(settleScript.Eval) // settling twice is a no-op (the lease is gone)
	}
	for i, j := range jobs {
		j.result <- cmds[i].Err()
	}
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

// Usage implements UsageReader (usage.lua: read only, Redis TIME as the clock).
func (r *Redis) Usage(ctx context.Context, s Subject) (Usage, error) {
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
	if err := r.c.Del(ctx, k+":r", k+":c", k+":t").Err(); err != nil {
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
	b.Grow(len(s.Tenant) + len(s.Kind) + len(s.ID) + len(s.Model) + 12)
	b.WriteString("{t:")
	escapeKeyPart(&b, s.Tenant)
	b.WriteString("}:q:")
	escapeKeyPart(&b, string(s.Kind))
	b.WriteByte(':')
	escapeKeyPart(&b, s.ID)
	if s.Model != "" {
		b.WriteByte('@')
		escapeKeyPart(&b, s.Model)
	}
	if s.Endpoint != "" {
		b.WriteByte('#')
		escapeKeyPart(&b, s.Endpoint)
	}
	return b.String()
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
