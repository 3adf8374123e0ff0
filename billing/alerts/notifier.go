package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Store is what the notifier reads and writes: the ledger's figures, users' tiers, thresholds,
// events and deliveries.
type Store interface {
	billing.LedgerReader
	BillingRecords(ctx context.Context, f store.BillingFilter) ([]store.DailyUsage, error)
	GetUser(ctx context.Context, id string) (store.User, error)
	AlertThresholds(ctx context.Context) ([]store.AlertThresholds, error)
	InsertAlertEvent(ctx context.Context, e store.AlertEvent) (bool, error)
	ClaimAlertDelivery(ctx context.Context, now time.Time, lease time.Duration) (store.AlertJob, bool, error)
	RecordAlertAttempt(ctx context.Context, a store.AlertAttempt, delivered bool) error
}

// UsageWriter is the usage sink the notifier watches (the ledger).
type UsageWriter interface {
	InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error)
}

// Deps are the notifier's collaborators.
type Deps struct {
	Store Store
	// Policies gives the budgets of subjects; Quota the tiers behind daily token quotas (with its
	// defaults), so limits are read as admission reads them (quota.Options.SubjectsOf).
	Policies quota.PolicyLookup
	Quota    quota.Options
	// Allow is the outbound allow list (outbound.allow), applied to webhooks as to providers.
	Allow []netip.Prefix
	// Secrets opens the webhooks' sealed secrets (nil: no secret key configured, and only a
	// secret stored in the clear before sealing signs; see OpenSecret).
	Secrets    *secrets.Keyring
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// thresholdsTTL bounds how long a replica uses thresholds another replica may have changed.
const thresholdsTTL = 5 * time.Second

// figuresTTL bounds how long a figure read from the store is carried forward by adding what this
// replica writes: other replicas add to the same subjects, so it is read again at least this
// often, and a crossing their requests made is seen within it.
const figuresTTL = 5 * time.Second

// maxRemembered bounds the crossings remembered as emitted and the figures carried forward; past
// it the memory starts again (the store's unique key still keeps each crossing one event).
const maxRemembered = 100_000

// Notifier detects crossings and delivers their events (see the package doc).
type Notifier struct {
	d      Deps
	o      Options
	policy outbound.Policy
	client *http.Client
	alerts *prometheus.CounterVec
	sent   *prometheus.CounterVec

	mu      sync.Mutex
	pending *batchUse     // what the batches written since the last pass added
	touched chan struct{} // a pass is due
	wake    chan struct{} // a delivery is due

	// Owned by the detection loop.
	seen       map[string]bool      // crossings emitted or found stored
	figures    map[string]figure    // use of a limit in a period, as last read plus what was added since
	funded     map[string]*big.Int  // credit: what was put into a payer's account, as last read
	tiers      map[string]tierEntry // users' tiers, as last read
	thresholds map[string]map[string][]int
	loadedAt   time.Time
	reread     bool // this pass reads every figure (see pass)
	stale      atomic.Bool
	now        func() time.Time
}

// figure is a subject's use of one limit in one period: read from the store at read, plus what
// this replica's batches added since.
type figure struct {
	used *big.Int
	read time.Time
}

// batchUse is what written batches added, per subject ("key/<id>", "user/<id>", "tenant/<id>"):
// cost (pico-USD) and tokens to the rollups, charges to the credit account of the payer.
type batchUse struct {
	holders map[string]quota.Holder // key id → its holder
	cost    map[string]int64
	tokens  map[string]int64
	charged map[string]int64
}

func newBatchUse() *batchUse {
	return &batchUse{holders: map[string]quota.Holder{}, cost: map[string]int64{}, tokens: map[string]int64{}, charged: map[string]int64{}}
}

// New returns a notifier; o must have passed Validate.
func New(d Deps, o Options) *Notifier {
	o = o.WithDefaults()
	if d.Log == nil {
		d.Log = slog.Default()
	}
	n := &Notifier{d: d, o: o, policy: o.Policy(d.Allow), pending: newBatchUse(), touched: make(chan struct{}, 1),
		wake: make(chan struct{}, 1), seen: map[string]bool{}, figures: map[string]figure{},
		funded: map[string]*big.Int{}, tiers: map[string]tierEntry{}, now: time.Now}
	n.client = outbound.NewClient(outbound.Options{MaxIdleConnsPerHost: 4, DialTimeout: o.Delivery.Timeout,
		ResponseHeaderTimeout: o.Delivery.Timeout, Policy: n.policy})
	n.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_limit_alerts_total",
		Help: "Alert events emitted (each threshold crossing once, on the replica that stored it), by kind and threshold percent."},
		[]string{"kind", "threshold"})
	n.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_alert_deliveries_total",
		Help: "Webhook delivery attempts of alert events by result: delivered, retry (failed, to be retried) or failed (out of attempts)."},
		[]string{"result"})
	if d.Registerer != nil {
		d.Registerer.MustRegister(n.alerts, n.sent)
	}
	return n
}

// CheckURL checks a webhook URL against the URL rules and the address policy (see CheckURL).
func (n *Notifier) CheckURL(raw string) error { return CheckURL(raw, n.policy) }

// Defaults are the configured thresholds, used where no stored set applies.
func (n *Notifier) Defaults() []int { return n.o.Thresholds }

// ThresholdsChanged has this replica read the stored thresholds again before its next pass
// (other replicas do within thresholdsTTL).
func (n *Notifier) ThresholdsChanged() { n.stale.Store(true) }

// Watch returns w with the notifier told of each batch w wrote: the detection pass checks the
// batch's subjects after the write, off the writer's path. w must be the writer that persists
// what the records say, payers named (billing.Ledger names them before it).
func (n *Notifier) Watch(w UsageWriter) UsageWriter {
	if !*n.o.Enabled {
		return w
	}
	return watched{w: w, n: n}
}

type watched struct {
	w UsageWriter
	n *Notifier
}

func (w watched) InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error) {
	k, err := w.w.InsertUsage(ctx, recs)
	if err == nil && k > 0 {
		w.n.touch(recs)
	}
	return k, err
}

// touch adds a written batch to what the next pass checks: the records that reached a model
// (the only ones in the rollups), by key, user and tenant, and the charges by payer. A replayed
// batch adds again what the store skipped; that only makes a pass read the store sooner.
func (n *Notifier) touch(recs []store.UsageRecord) {
	n.mu.Lock()
	p := n.pending
	for i := range recs {
		r := &recs[i]
		if !r.ReachedModel() || r.KeyID == "" {
			continue
		}
		p.holders[r.KeyID] = quota.Holder{KeyID: r.KeyID, UserID: r.UserID, TenantID: r.TenantID}
		var cost int64
		if r.CostPicoUSD != nil && *r.CostPicoUSD > 0 {
			cost = *r.CostPicoUSD
		}
		for _, s := range [...]string{"key/" + r.KeyID, "user/" + r.UserID, "tenant/" + r.TenantID} {
			if !strings.HasSuffix(s, "/") {
				p.cost[s] += cost
				p.tokens[s] += r.PromptTokens + r.CompletionTokens
			}
		}
		if r.Charge && cost > 0 && r.PayerType != "" {
			p.charged[r.PayerType+"/"+r.PayerID] += cost
		}
	}
	n.mu.Unlock()
	select {
	case n.touched <- struct{}{}:
	default:
	}
}

// Run detects and delivers until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	if !*n.o.Enabled {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.detectLoop(ctx) })
	wg.Go(func() { n.deliverLoop(ctx) })
	wg.Wait()
	n.client.CloseIdleConnections()
}

// detectLoop runs a pass after each batch written, and every figuresTTL a pass that reads the
// figures of the subjects touched since the last one: a crossing made by another replica's
// requests is seen even when no more come here.
func (n *Notifier) detectLoop(ctx context.Context) {
	t := time.NewTicker(figuresTTL)
	defer t.Stop()
	recent := newBatchUse()
	for {
		var use *batchUse
		reread := false
		select {
		case <-ctx.Done():
			return
		case <-n.touched:
			n.mu.Lock()
			use = n.pending
			n.pending = newBatchUse()
			n.mu.Unlock()
			for k, h := range use.holders {
				recent.holders[k] = h
			}
			for k := range use.charged {
				recent.charged[k] = 0
			}
		case <-t.C:
			use, recent, reread = recent, newBatchUse(), true
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n.pass(pctx, use, reread)
		cancel()
	}
}

// subject is one limit holder a pass checks.
type subject struct {
	kind   quota.Kind
	id     string
	tenant string
	tokens int64 // daily token quota (0: none)
}

func (s subject) String() string { return string(s.kind) + "/" + s.id }

// pass checks every subject the batches touched once: each of a key's subjects as admission
// counts them (quota.Options.SubjectsOf, so the limits are admission's), and each payer's credit.
// reread reads every figure from the store rather than carry it forward.
func (n *Notifier) pass(ctx context.Context, use *batchUse, reread bool) {
	n.reread = reread
	if err := n.loadThresholds(ctx); err != nil {
		n.d.Log.Warn("alerts: reading thresholds failed; this pass uses the last ones read", "err", err)
	}
	now := n.now().UTC()
	if len(n.figures) >= maxRemembered {
		n.figures = map[string]figure{}
	}
	checked := map[string]bool{}
	for _, h := range use.holders {
		if h.UserID != "" {
			h.Tier = n.tierOf(ctx, h.UserID, now)
		}
		for _, qs := range n.d.Quota.SubjectsOf(n.d.Policies, h, "", "", "") {
			s := subject{kind: qs.Kind, id: qs.ID, tenant: h.TenantID, tokens: qs.Limits.TokensPerDay}
			if qs.Kind == quota.KindSession || qs.Model != "" || checked[s.String()] {
				continue
			}
			checked[s.String()] = true
			n.checkLimits(ctx, s, use.cost[s.String()], use.tokens[s.String()], now)
		}
	}
	for payer, charged := range use.charged {
		kind, id, _ := strings.Cut(payer, "/")
		tenant := id
		if kind != string(quota.KindTenant) {
			tenant = n.tenantOf(use, kind, id)
		}
		n.checkCredit(ctx, subject{kind: quota.Kind(kind), id: id, tenant: tenant}, charged, now)
	}
}

// tierTTL bounds how long a user's tier is reused: a tier change moves the daily token quota
// the alerts compare with within it.
const tierTTL = 30 * time.Second

type tierEntry struct {
	tier string
	read time.Time
}

// tierOf returns a user's tier, read from the store at most every tierTTL ("" when it cannot be
// read: the default tier's limits apply, as admission's do for an unknown tier).
func (n *Notifier) tierOf(ctx context.Context, userID string, now time.Time) string {
	if e, ok := n.tiers[userID]; ok && now.Sub(e.read) < tierTTL {
		return e.tier
	}
	u, err := n.d.Store.GetUser(ctx, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		n.d.Log.Warn("alerts: reading a user failed", "user_id", userID, "err", err)
		return n.tiers[userID].tier
	}
	if len(n.tiers) >= maxRemembered {
		n.tiers = map[string]tierEntry{}
	}
	n.tiers[userID] = tierEntry{tier: u.Tier, read: now}
	return u.Tier
}

// tenantOf finds a user's tenant among the batches' holders.
func (n *Notifier) tenantOf(use *batchUse, kind, id string) string {
	for _, h := range use.holders {
		if kind == string(quota.KindUser) && h.UserID == id {
			return h.TenantID
		}
	}
	return ""
}

// estimate says whether a figure must be read from the store: when it was never read or is
// older than figuresTTL, or when what was added since may have reached the next threshold not
// yet emitted (before < threshold ≤ after). Otherwise it carries the figure forward by added and
// reports false: most batches cost no read at all.
func (n *Notifier) estimate(key string, limit *big.Int, added int64, next int, now time.Time) bool {
	f, ok := n.figures[key]
	if !ok || n.reread || now.Sub(f.read) >= figuresTTL {
		return true
	}
	after := new(big.Int).Add(f.used, big.NewInt(added))
	if reached(after, limit, next) {
		return true
	}
	n.figures[key] = figure{used: after, read: f.read}
	return false
}

// remember records a figure just read.
func (n *Notifier) remember(key string, used *big.Int, now time.Time) {
	n.figures[key] = figure{used: new(big.Int).Set(used), read: now}
}

// reached reports whether used is at least percent % of limit.
func reached(used, limit *big.Int, percent int) bool {
	return new(big.Int).Mul(used, big.NewInt(100)).Cmp(new(big.Int).Mul(limit, big.NewInt(int64(percent)))) >= 0
}

// checkLimits compares a subject's spend with its budgets and its tokens with its daily quota.
func (n *Notifier) checkLimits(ctx context.Context, s subject, cost, tokens int64, now time.Time) {
	p, _ := n.d.Policies.Lookup(s.kind, s.id, "")
	micro := big.NewInt(1_000_000)
	type budget struct {
		kind, period string
		limit        *big.Int
		next         int
	}
	var budgets []budget
	for _, b := range [...]struct {
		kind, period string
		micros       *int64
	}{{KindBudgetDay, now.Format(time.DateOnly), p.BudgetDayMicroUSD}, {KindBudgetMonth, now.Format("2006-01"), p.BudgetMonthMicroUSD}} {
		if b.micros == nil || *b.micros <= 0 {
			continue
		}
		if next, ok := n.next(s, b.kind, b.period); ok {
			budgets = append(budgets, budget{b.kind, b.period, new(big.Int).Mul(big.NewInt(*b.micros), micro), next})
		}
	}
	read := false
	for _, b := range budgets {
		if n.estimate(b.kind+"\x00"+s.String()+"\x00"+b.period, b.limit, cost, b.next, now) {
			read = true
		}
	}
	if read { // one query answers both periods
		spentMonth, spentDay, err := n.d.Store.Spend(ctx, store.SpendFilter{SubjectType: string(s.kind), SubjectID: s.id, Day: now})
		if err != nil {
			n.d.Log.Warn("alerts: reading spend failed", "subject", s.String(), "err", err)
		} else {
			for _, b := range budgets {
				used := spentDay
				if b.kind == KindBudgetMonth {
					used = spentMonth
				}
				n.remember(b.kind+"\x00"+s.String()+"\x00"+b.period, used, now)
				n.compare(ctx, s, b.kind, b.period, b.limit, used, "usd", now)
			}
		}
	}
	if s.tokens <= 0 {
		return
	}
	day := now.Format(time.DateOnly)
	next, ok := n.next(s, KindTokensDay, day)
	if !ok {
		return
	}
	limit, key := big.NewInt(s.tokens), KindTokensDay+"\x00"+s.String()+"\x00"+day
	if !n.estimate(key, limit, tokens, next, now) {
		return
	}
	used, err := n.tokensToday(ctx, s, now)
	if err != nil {
		n.d.Log.Warn("alerts: reading token use failed", "subject", s.String(), "err", err)
		return
	}
	n.remember(key, big.NewInt(used), now)
	n.compare(ctx, s, KindTokensDay, day, limit, big.NewInt(used), "tokens", now)
}

// tokensToday sums a subject's prompt and completion tokens of today from the rollups, the
// tokens admission counts against the daily quota.
func (n *Notifier) tokensToday(ctx context.Context, s subject, now time.Time) (int64, error) {
	from := now.Truncate(24 * time.Hour)
	f := store.BillingFilter{From: from, To: from.Add(24 * time.Hour), Limit: 1000}
	switch s.kind {
	case quota.KindTenant:
		f.TenantID = s.id
	case quota.KindUser:
		f.UserID = s.id
	case quota.KindKey:
		f.KeyID = s.id
	default:
		return 0, nil
	}
	var total int64
	for {
		rows, err := n.d.Store.BillingRecords(ctx, f)
		if err != nil {
			return 0, err
		}
		for _, r := range rows {
			total += r.PromptTokens + r.CompletionTokens
		}
		if len(rows) < f.Limit {
			return total, nil
		}
		f.Offset += len(rows)
	}
}

// checkCredit compares the charges of a paying account with all that was put into it (the
// balance plus the charges): the share of the credit used. A top-up starts a new period, so
// its thresholds can be crossed again.
func (n *Notifier) checkCredit(ctx context.Context, s subject, added int64, now time.Time) {
	if !n.wanted(s, KindCredit) {
		return
	}
	key := KindCredit + "\x00" + s.String()
	if funded, ok := n.funded[key]; ok {
		if next, any := n.next(s, KindCredit, fundedPeriod(funded)); !any {
			if !n.reread && now.Sub(n.figures[key].read) < figuresTTL {
				return // every threshold of this funding is emitted; a top-up shows within figuresTTL
			}
		} else if !n.estimate(key, funded, added, next, now) {
			return
		}
	}
	a, err := n.d.Store.CreditAccountOf(ctx, string(s.kind), s.id)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		n.d.Log.Warn("alerts: reading the credit account failed", "subject", s.String(), "err", err)
		return
	}
	if a.ChargedPicoUSD == nil || a.BalancePicoUSD == nil {
		return
	}
	funded := new(big.Int).Add(a.BalancePicoUSD, a.ChargedPicoUSD)
	if len(n.funded) >= maxRemembered {
		n.funded = map[string]*big.Int{}
	}
	n.remember(key, a.ChargedPicoUSD, now)
	n.funded[key] = funded
	if funded.Sign() <= 0 {
		return
	}
	n.compare(ctx, s, KindCredit, fundedPeriod(funded), funded, a.ChargedPicoUSD, "usd", now)
}

func fundedPeriod(funded *big.Int) string { return "funded:" + billing.FormatPico(funded) }

// next returns the lowest threshold of the subject's kind not known to be emitted in period;
// false when every one is (or the kind has none).
func (n *Notifier) next(s subject, kind, period string) (int, bool) {
	for _, t := range n.thresholdsOf(s, kind) {
		if !n.seen[crossingKey(s, kind, period, t)] {
			return t, true
		}
	}
	return 0, false
}

func crossingKey(s subject, kind, period string, t int) string {
	return kind + "\x00" + s.String() + "\x00" + period + "\x00" + strconv.Itoa(t)
}

// compare emits an event for each threshold of the subject's kind that used has reached in
// period and that is not known to be emitted. limit and used are in the same integer unit
// (pico-USD or tokens).
func (n *Notifier) compare(ctx context.Context, s subject, kind, period string, limit, used *big.Int, unit string, now time.Time) {
	if limit.Sign() <= 0 {
		return
	}
	for _, t := range n.thresholdsOf(s, kind) {
		if !reached(used, limit, t) {
			return // ascending: the higher ones are not reached either
		}
		key := crossingKey(s, kind, period, t)
		if n.seen[key] {
			continue
		}
		if err := n.emit(ctx, s, kind, period, t, limit, used, unit, now); err != nil {
			n.d.Log.Warn("alerts: storing an event failed; the next pass tries again", "kind", kind,
				"subject", s.String(), "threshold", t, "err", err)
			// Read again next time.
			delete(n.figures, kind+"\x00"+s.String()+"\x00"+period)
			delete(n.figures, kind+"\x00"+s.String())
			return
		}
		if len(n.seen) >= maxRemembered {
			n.seen = map[string]bool{}
		}
		n.seen[key] = true
	}
}

// Payload is the JSON body of a delivery (documented in docs/operations.md).
type Payload struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // always "limit.threshold_crossed"
	Kind      string `json:"kind"`
	Level     string `json:"level"`
	Threshold int    `json:"threshold_percent"`
	// SubjectType and SubjectID name the tenant, user or key; TenantID its tenant.
	SubjectType string `json:"subject_type"`
	SubjectID   string `json:"subject_id"`
	TenantID    string `json:"tenant_id"`
	// Period is the UTC day (2006-01-02), month (2006-01), or for credit "funded:<USD>", the
	// total put into the account when the threshold was crossed.
	Period string `json:"period"`
	// Limit and Used are decimal strings in Unit: "usd" or "tokens".
	Limit     string    `json:"limit"`
	Used      string    `json:"used"`
	Unit      string    `json:"unit"`
	CreatedAt time.Time `json:"created_at"`
}

// emit stores one event; only the replica whose insert is new counts it and sends it.
func (n *Notifier) emit(ctx context.Context, s subject, kind, period string, t int, limit, used *big.Int, unit string, now time.Time) error {
	format := billing.FormatPico
	if unit == "tokens" {
		format = func(v *big.Int) string { return v.String() }
	}
	level := LevelWarning
	if t >= 100 {
		level = LevelReached
	}
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	p := Payload{ID: "alert_" + strings.ReplaceAll(id.String(), "-", ""), Type: "limit.threshold_crossed", Kind: kind,
		Level: level, Threshold: t, SubjectType: string(s.kind), SubjectID: s.id, TenantID: s.tenant, Period: period,
		Limit: format(limit), Used: format(used), Unit: unit, CreatedAt: now.Truncate(time.Microsecond)}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	inserted, err := n.d.Store.InsertAlertEvent(ctx, store.AlertEvent{ID: p.ID, Kind: kind, SubjectType: p.SubjectType,
		SubjectID: s.id, TenantID: s.tenant, Period: period, Threshold: t, Limit: p.Limit, Used: p.Used, Payload: body,
		CreatedAt: p.CreatedAt})
	if err != nil || !inserted {
		return err
	}
	n.alerts.WithLabelValues(kind, strconv.Itoa(t)).Inc()
	n.d.Log.Info("limit alert", "kind", kind, "level", level, "threshold", t, "subject", p.SubjectType+"/"+s.id,
		"tenant_id", s.tenant, "period", period, "used", p.Used, "limit", p.Limit, "unit", unit, "event_id", p.ID)
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// loadThresholds reads the stored thresholds when they are older than thresholdsTTL or changed
// here.
func (n *Notifier) loadThresholds(ctx context.Context) error {
	if n.thresholds != nil && !n.stale.Load() && n.now().Sub(n.loadedAt) < thresholdsTTL {
		return nil
	}
	n.stale.Store(false)
	all, err := n.d.Store.AlertThresholds(ctx)
	if err != nil {
		if n.thresholds == nil {
			n.thresholds = map[string]map[string][]int{}
		}
		return err
	}
	m := make(map[string]map[string][]int, len(all))
	for _, t := range all {
		m[t.SubjectType+"/"+t.SubjectID] = t.Percents
	}
	n.thresholds, n.loadedAt = m, n.now()
	return nil
}

// thresholdsOf resolves a subject's thresholds of one kind: its own set, else (for a user or
// key) its tenant's, else the global one, else the configured defaults. The first set that names
// the kind wins; an empty list there turns the kind off.
func (n *Notifier) thresholdsOf(s subject, kind string) []int {
	chain := []string{string(s.kind) + "/" + s.id}
	if s.kind != quota.KindTenant && s.tenant != "" {
		chain = append(chain, string(quota.KindTenant)+"/"+s.tenant)
	}
	for _, k := range append(chain, "global/") {
		if ps, ok := n.thresholds[k][kind]; ok {
			return ps
		}
	}
	return n.o.Thresholds
}

// wanted reports whether any threshold of the kind applies to the subject, to skip reading its
// figures when none does.
func (n *Notifier) wanted(s subject, kind string) bool { return len(n.thresholdsOf(s, kind)) > 0 }
