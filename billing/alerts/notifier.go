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
	Allow      []netip.Prefix
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// thresholdsTTL bounds how long a replica uses thresholds another replica may have changed.
const thresholdsTTL = 5 * time.Second

// maxSeen bounds the crossings remembered as emitted; past it the memory starts again (the
// store's unique key still keeps each crossing one event).
const maxSeen = 100_000

// Notifier detects crossings and delivers their events (see the package doc).
type Notifier struct {
	d      Deps
	o      Options
	policy outbound.Policy
	client *http.Client
	alerts *prometheus.CounterVec
	sent   *prometheus.CounterVec

	mu      sync.Mutex
	pending map[string]quota.Holder // key id → its holder, touched since the last pass
	touched chan struct{}           // a pass is due
	wake    chan struct{}           // a delivery is due

	// Owned by the detection loop.
	seen       map[string]bool // crossings emitted or found stored
	thresholds map[string]map[string][]int
	loadedAt   time.Time
	stale      atomic.Bool
	now        func() time.Time
}

// New returns a notifier; o must have passed Validate.
func New(d Deps, o Options) *Notifier {
	o = o.WithDefaults()
	if d.Log == nil {
		d.Log = slog.Default()
	}
	n := &Notifier{d: d, o: o, policy: o.Policy(d.Allow), pending: map[string]quota.Holder{},
		touched: make(chan struct{}, 1), wake: make(chan struct{}, 1), seen: map[string]bool{}, now: time.Now}
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

// Watch returns w with the notifier told of each batch written: the detection pass reads the
// figures of the batch's subjects, after the write, off the writer's path.
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

// touch notes the keys of records that reached a model (the others cost nothing and use no
// tokens) for the next pass.
func (n *Notifier) touch(recs []store.UsageRecord) {
	n.mu.Lock()
	for i := range recs {
		r := &recs[i]
		if r.ReachedModel() && r.KeyID != "" {
			n.pending[r.KeyID] = quota.Holder{KeyID: r.KeyID, UserID: r.UserID, TenantID: r.TenantID}
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

func (n *Notifier) detectLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.touched:
		}
		n.mu.Lock()
		holders := n.pending
		n.pending = map[string]quota.Holder{}
		n.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n.pass(pctx, holders)
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

// pass checks every subject of the holders once.
func (n *Notifier) pass(ctx context.Context, holders map[string]quota.Holder) {
	if err := n.loadThresholds(ctx); err != nil {
		n.d.Log.Warn("alerts: reading thresholds failed; this pass uses the last ones read", "err", err)
	}
	now := n.now().UTC()
	checked := map[string]bool{}
	tiers := map[string]string{}
	for _, h := range holders {
		if h.UserID != "" {
			tier, ok := tiers[h.UserID]
			if !ok {
				u, err := n.d.Store.GetUser(ctx, h.UserID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					n.d.Log.Warn("alerts: reading a user failed", "user_id", h.UserID, "err", err)
				}
				tier = u.Tier
				tiers[h.UserID] = tier
			}
			h.Tier = tier
		}
		for _, s := range n.d.Quota.SubjectsOf(n.d.Policies, h, "", "", "") {
			if s.Kind == quota.KindSession || s.Model != "" {
				continue
			}
			if k := string(s.Kind) + "/" + s.ID; !checked[k] {
				checked[k] = true
				n.checkLimits(ctx, subject{kind: s.Kind, id: s.ID, tenant: h.TenantID, tokens: s.Limits.TokensPerDay}, now)
			}
		}
		n.checkCredit(ctx, h, now, checked)
	}
}

// checkLimits compares a subject's spend with its budgets and its tokens with its daily quota.
func (n *Notifier) checkLimits(ctx context.Context, s subject, now time.Time) {
	p, ok := n.d.Policies.Lookup(s.kind, s.id, "")
	var dayBudget, monthBudget int64
	if ok {
		if p.BudgetDayMicroUSD != nil {
			dayBudget = *p.BudgetDayMicroUSD
		}
		if p.BudgetMonthMicroUSD != nil {
			monthBudget = *p.BudgetMonthMicroUSD
		}
	}
	day, month := now.Format(time.DateOnly), now.Format("2006-01")
	if (dayBudget > 0 && n.wanted(s, KindBudgetDay)) || (monthBudget > 0 && n.wanted(s, KindBudgetMonth)) {
		spentMonth, spentDay, err := n.d.Store.Spend(ctx, store.SpendFilter{SubjectType: string(s.kind), SubjectID: s.id, Day: now})
		if err != nil {
			n.d.Log.Warn("alerts: reading spend failed", "subject", string(s.kind)+"/"+s.id, "err", err)
		} else {
			micro := big.NewInt(1_000_000)
			if dayBudget > 0 {
				limit := new(big.Int).Mul(big.NewInt(dayBudget), micro)
				n.compare(ctx, s, KindBudgetDay, day, limit, spentDay, "usd", now)
			}
			if monthBudget > 0 {
				limit := new(big.Int).Mul(big.NewInt(monthBudget), micro)
				n.compare(ctx, s, KindBudgetMonth, month, limit, spentMonth, "usd", now)
			}
		}
	}
	if s.tokens > 0 && n.wanted(s, KindTokensDay) {
		used, err := n.tokensToday(ctx, s, now)
		if err != nil {
			n.d.Log.Warn("alerts: reading token use failed", "subject", string(s.kind)+"/"+s.id, "err", err)
			return
		}
		n.compare(ctx, s, KindTokensDay, day, big.NewInt(s.tokens), big.NewInt(used), "tokens", now)
	}
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

// checkCredit compares the charges of the account paying for the holder's requests with all
// that was put into it (the balance plus the charges): the share of the credit used. A top-up
// starts a new period, so its thresholds can be crossed again.
func (n *Notifier) checkCredit(ctx context.Context, h quota.Holder, now time.Time, checked map[string]bool) {
	a, ok, err := billing.PayerAccount(ctx, n.d.Store, h.UserID, h.TenantID)
	if err != nil {
		n.d.Log.Warn("alerts: reading the credit account failed", "user_id", h.UserID, "tenant_id", h.TenantID, "err", err)
		return
	}
	if !ok || checked["credit:"+a.ID] {
		return
	}
	checked["credit:"+a.ID] = true
	s := subject{kind: quota.Kind(a.SubjectType), id: a.SubjectID, tenant: h.TenantID}
	if !n.wanted(s, KindCredit) || a.ChargedPicoUSD == nil || a.BalancePicoUSD == nil {
		return
	}
	funded := new(big.Int).Add(a.BalancePicoUSD, a.ChargedPicoUSD)
	if funded.Sign() <= 0 {
		return
	}
	n.compare(ctx, s, KindCredit, "funded:"+billing.FormatPico(funded), funded, a.ChargedPicoUSD, "usd", now)
}

// compare emits an event for each threshold of the subject's kind that used has reached in
// period and that is not known to be emitted. limit and used are in the same integer unit
// (pico-USD or tokens).
func (n *Notifier) compare(ctx context.Context, s subject, kind, period string, limit, used *big.Int, unit string, now time.Time) {
	if limit.Sign() <= 0 {
		return
	}
	hundredUsed := new(big.Int).Mul(used, big.NewInt(100))
	for _, t := range n.thresholdsOf(s, kind) {
		if hundredUsed.Cmp(new(big.Int).Mul(limit, big.NewInt(int64(t)))) < 0 {
			return // ascending: the higher ones are not reached either
		}
		key := kind + "\x00" + string(s.kind) + "\x00" + s.id + "\x00" + period + "\x00" + strconv.Itoa(t)
		if n.seen[key] {
			continue
		}
		if err := n.emit(ctx, s, kind, period, t, limit, used, unit, now); err != nil {
			n.d.Log.Warn("alerts: storing an event failed; the next pass tries again", "kind", kind,
				"subject", string(s.kind)+"/"+s.id, "threshold", t, "err", err)
			return
		}
		if len(n.seen) >= maxSeen {
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
