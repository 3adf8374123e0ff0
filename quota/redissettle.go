package quota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Settle implements Limiter. A settlement rides along with the next admission of the same
// tenant made by this limiter (admit.lua applies it before it decides), so under load it costs
// no round trip and no script run of its own. While other requests of the tenant admitted here
// are in flight and admissions come often, Settle waits a few gaps between admissions (at most
// maxSettleLinger) for one to carry it; when none does, or none is to be expected, it sends every
// settlement of the tenant queued by then in one settle.lua call. Either way it returns once
// its settlement is applied (or its context ends). A request admitted from a permit lease is
// settled in the lease while it runs, with no call at all.
func (r *Redis) Settle(ctx context.Context, lease *Lease, used Spent) error {
	if lease == nil || len(lease.Subjects) == 0 {
		return nil
	}
	var wait chan struct{}
	if lease.permit != nil {
		// Admitted from a permit lease: settled there while it runs; after, the request's slot
		// is settled in Redis once the lease has been given back.
		if wait = r.permits.settleLocal(lease, used); wait == nil {
			return nil
		}
	}
	if r.settleTrip == nil {
		return r.settleShared(ctx, lease, used, wait)
	}
	return r.settleTrip(ctx, func(ctx context.Context) error { return r.settleShared(ctx, lease, used, wait) })
}

// settleShared is Settle in Redis, once the permit lease the request came from (if any) has
// been given back (wait closed).
func (r *Redis) settleShared(ctx context.Context, lease *Lease, used Spent, wait chan struct{}) error {
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return wrapSettle(ctx.Err())
		}
	}
	err := r.settle(ctx, r.settleJob(lease, used))
	if err != nil && ctx.Err() == nil {
		// A shared send gave up under its own bound (meant for settlements whose callers
		// stopped waiting) while this caller still waits: it sends its settlement again, on its
		// own and under its own context. Settling twice is a no-op, so this is safe whether or
		// not the first send landed.
		again := r.settleJob(lease, used)
		r.sendSettles(ctx, []*settleJob{again})
		err = <-again.result
	}
	return wrapSettle(err)
}

// settle hands job to a carrier or a sender and waits for its outcome or the end of ctx.
func (r *Redis) settle(ctx context.Context, job *settleJob) error {
	if linger := r.settles.enqueue(job, time.Now()); linger > 0 {
		t := time.NewTimer(linger)
		select {
		case err := <-job.result:
			t.Stop()
			return err
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	// Send what is queued (with this job, unless a carrier took it meanwhile), unless a send of
	// the tenant is in flight: its sender sends what queued meanwhile next (group commit). The
	// sender is a goroutine bounded on its own: a caller whose context ends stops waiting, but
	// its settlement is sent.
	if jobs := r.settles.startSend(job.tenant); len(jobs) > 0 {
		go func() {
			for len(jobs) > 0 {
				// Each send has a bound of its own: a sender kept busy by a steady stream of
				// settlements may run for long, and a bound shared by all its sends would fail
				// every send after the first second.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleSendTimeout)
				r.sendSettles(sctx, jobs)
				cancel()
				jobs = r.settles.nextSend(job.tenant)
			}
		}()
	}
	select {
	case err := <-job.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func wrapSettle(err error) error {
	if err != nil {
		return fmt.Errorf("quota: redis settle: %w", err)
	}
	return nil
}

// settleNow sends the settlements at once, one settle.lua call per tenant in one pipeline, and
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

// settleJob builds the settlement of a lease: its keys and its arguments of settleLease
// (settlefn.lua). A lease whose AdmittedAt is 0 undoes an admission whose reply was lost.
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
	admitted := lease.AdmittedAt
	if lease.permit != nil {
		admitted = r.permits.admittedAt(lease.permit)
	}
	diff := max(used.Tokens, 0) - lease.Reserved
	costDiff := min(max(used.Cost, 0), MaxMoney) - lease.ReservedCost
	chargeDiff := min(max(used.Charge, 0), MaxMoney) - lease.ReservedCost
	return &settleJob{tenant: lease.Subjects[0].Tenant, keys: keys,
		args:   []any{len(lease.Subjects), lease.ID, diff, admitted, costDiff, chargeDiff, string(kinds)},
		result: make(chan error, 1)}
}

// settleJob is one settlement; result (buffered) gets its outcome.
type settleJob struct {
	tenant string
	keys   []string
	args   []any // settleArgs of settlefn.lua
	result chan error
}

// settleSendTimeout bounds one settle.lua call sent on its own. It runs after the answers have
// left, so it may take longer than an admission; a lease it fails to release expires with its
// TTL, unless Resilient replays the settlement.
const settleSendTimeout = time.Second

// maxSettleLinger caps how long a settlement waits for an admission to carry it, and
// maxCarried how many one admission carries.
const (
	maxSettleLinger = time.Millisecond
	maxCarried      = 64
)

// settleQueues holds, per tenant, the settlements waiting for a carrier and what says whether one
// is to be expected: the requests of the tenant this limiter has in flight (admitted, not yet
// settled) and the average gap between its admissions.
type settleQueues struct {
	mu sync.Mutex
	m  map[string]*tenantSettles
}

type tenantSettles struct {
	jobs     []*settleJob
	sending  bool // a sender is sending the tenant's settlements
	inFlight int
	last     time.Time     // the last admission
	gap      time.Duration // moving average of the gaps between admissions
}

func (q *settleQueues) get(tenant string) *tenantSettles {
	if q.m == nil {
		q.m = map[string]*tenantSettles{}
	}
	t := q.m[tenant]
	if t == nil {
		t = &tenantSettles{}
		q.m[tenant] = t
	}
	return t
}

// admitted counts an admission of tenant in flight and takes the settlements it will carry.
func (q *settleQueues) admitted(tenant string, now time.Time) []*settleJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.get(tenant)
	if !t.last.IsZero() {
		t.gap = (3*t.gap + now.Sub(t.last)) / 4
	}
	t.last = now
	t.inFlight++
	return t.takeLocked(maxCarried)
}

// unadmitted undoes admitted's count for an admission that was refused or failed.
func (q *settleQueues) unadmitted(tenant string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.m[tenant]; t != nil {
		t.inFlight = max(t.inFlight-1, 0)
		q.forget(tenant, t)
	}
}

// forget drops a tenant's state once nothing of it is in flight or queued: the gap is learnt
// again from the next admissions.
func (q *settleQueues) forget(tenant string, t *tenantSettles) {
	if t.inFlight == 0 && len(t.jobs) == 0 && !t.sending {
		delete(q.m, tenant)
	}
}

// enqueue queues a settlement, ends its request's count and says how long to wait for an
// admission to carry it: a few gaps between admissions while other requests of the tenant are
// in flight here and admissions have been coming often, else nothing.
func (q *settleQueues) enqueue(job *settleJob, now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.get(job.tenant)
	t.inFlight = max(t.inFlight-1, 0)
	t.jobs = append(t.jobs, job)
	if t.inFlight == 0 || t.gap <= 0 || now.Sub(t.last) > maxSettleLinger {
		return 0
	}
	return min(4*t.gap, maxSettleLinger)
}

// startSend takes every queued settlement of tenant for a new sender, unless one is sending.
func (q *settleQueues) startSend(tenant string) []*settleJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.m[tenant]
	if t == nil || t.sending {
		return nil
	}
	jobs := t.takeLocked(0)
	t.sending = len(jobs) > 0
	q.forget(tenant, t)
	return jobs
}

// nextSend takes what queued while the sender was sending; with nothing, the sender is done.
func (q *settleQueues) nextSend(tenant string) []*settleJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.m[tenant]
	jobs := t.takeLocked(0)
	if len(jobs) == 0 {
		t.sending = false
		q.forget(tenant, t)
	}
	return jobs
}

// take removes and returns up to max (0: all) queued settlements of tenant.
func (q *settleQueues) take(tenant string, max int) []*settleJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.m[tenant]; t != nil {
		jobs := t.takeLocked(max)
		q.forget(tenant, t)
		return jobs
	}
	return nil
}

func (t *tenantSettles) takeLocked(limit int) []*settleJob {
	n := len(t.jobs)
	if limit > 0 {
		n = min(n, limit)
	}
	if n == 0 {
		return nil
	}
	jobs := t.jobs[:n:n]
	t.jobs = append([]*settleJob(nil), t.jobs[n:]...)
	return jobs
}

// finish hands each job its result.
func finish(jobs []*settleJob, err error) {
	for _, j := range jobs {
		j.result <- err
	}
}

// sendSettles runs settle.lua once per tenant (a Cluster slot each), in one pipeline, and hands
// each job its result. A node without the script (restarted) gets the source in a second
// pipeline.
func (r *Redis) sendSettles(ctx context.Context, jobs []*settleJob) {
	var order []string
	byTenant := map[string][]*settleJob{}
	for _, j := range jobs {
		if _, ok := byTenant[j.tenant]; !ok {
			order = append(order, j.tenant)
		}
		byTenant[j.tenant] = append(byTenant[j.tenant], j)
	}
	run := func(call scriptCall) ([]*redis.Cmd, error) {
		pipe := r.c.Pipeline()
		cmds := make([]*redis.Cmd, len(order))
		for i, t := range order {
			keys, args := r.settleCall(byTenant[t])
			cmds[i] = call(ctx, pipe, keys, args...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run(settleScript.EvalSha)
	if err != nil && hasNoScript(cmds) {
		cmds, _ = run(settleScript.Eval) // settling twice is a no-op (the lease is gone)
	}
	for i, t := range order {
		finish(byTenant[t], cmds[i].Err())
	}
}

// settleCall is the keys and arguments of one settle.lua call settling jobs.
func (r *Redis) settleCall(jobs []*settleJob) ([]string, []any) {
	var keys []string
	args := make([]any, 0, 3+7*len(jobs))
	args = append(args, r.window, r.leaseTTL, len(jobs))
	for _, j := range jobs {
		keys = append(keys, j.keys...)
		args = append(args, j.args...)
	}
	return keys, args
}
