// Package alerts tells people when a tenant, user or key nears a limit: its daily or monthly
// budget, its prepaid credit, or its daily token quota.
//
// The pipeline: the usage writer (Notifier.Watch, in front of the store) notes, after each batch
// reached the store, what the batch added per key, user, tenant and paying credit account; a
// background loop then compares each subject's use with its thresholds (default 80, 90 and 100 %
// of the limit). The use is the store's figure (the ledger's rollups, the credit account), read at
// most every few seconds and carried forward in between by what this replica's batches add
// (before + added = after): the store is read again at once when a batch may have carried a
// subject over its next threshold, so most batches cost no read, and a crossing made by other
// replicas' requests is seen within the read interval. A threshold reached that this process has
// not emitted yet is inserted as an event; the store's unique key on (kind, subject, period,
// threshold) makes the first insert the only one, so every crossing is one event however many
// replicas see it, and the replica whose insert wins counts it in llmgate_limit_alerts_total. The
// event's insert adds, in the same transaction, a pending delivery to each enabled webhook.
//
// A delivery loop on every replica claims due deliveries (a lease in the store keeps each to one
// replica at a time), POSTs the event's JSON signed with the webhook's secret, and logs every
// attempt; a failed attempt is retried with exponential backoff until the attempts run out.
// Delivery is at least once: a replica that dies after the webhook answered and before the
// attempt was recorded leaves the delivery to be sent again when its lease ends, so receivers
// deduplicate by the event id. Nothing of this runs on the request path.
package alerts

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/llmgate/llmgate/providers/outbound"
)

// Kinds of alert: the limit whose use crossed a threshold.
const (
	KindBudgetDay   = "budget_day"   // spend today (UTC) against the day's budget
	KindBudgetMonth = "budget_month" // spend this calendar month (UTC) against the month's budget
	KindCredit      = "credit"       // prepaid credit used: charges against everything put in
	KindTokensDay   = "tokens_day"   // tokens today (UTC) against the daily token quota
)

// Kinds lists every kind, in the order the API shows them.
var Kinds = []string{KindBudgetDay, KindBudgetMonth, KindCredit, KindTokensDay}

// ValidKind reports whether k names a kind.
func ValidKind(k string) bool { return slices.Contains(Kinds, k) }

// Levels of an event: a warning below 100 %, reached at 100 %.
const (
	LevelWarning = "warning"
	LevelReached = "reached"
)

// MaxPercent is the highest threshold accepted: a limit cannot be used beyond itself by much,
// since admission refuses at 100 %.
const MaxPercent = 100

// DefaultThresholds are the percents alerted at when nothing else is set: warn at 80 and 90,
// tell at 100.
var DefaultThresholds = []int{80, 90, 100}

// Options is the config file's `alerts` section. Zero values take the defaults.
type Options struct {
	// Enabled turns detection and delivery on (default true). Off, no event is emitted and no
	// webhook called; the admin endpoints still answer.
	Enabled *bool `yaml:"enabled"`
	// Thresholds are the percents of a limit an event is emitted at, for every kind, unless the
	// admin API sets others globally or per subject (default [80, 90, 100]).
	Thresholds []int `yaml:"thresholds"`
	// AllowPrivateNetwork lets webhooks reach loopback and private addresses (default false);
	// outbound.allow applies to webhooks as to providers.
	AllowPrivateNetwork bool `yaml:"allow_private_network"`
	// Delivery tunes the webhook calls.
	Delivery DeliveryOptions `yaml:"delivery"`
}

// DeliveryOptions tune the webhook calls.
type DeliveryOptions struct {
	// MaxAttempts bounds the attempts of one delivery (default 10).
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the wait before the first retry; each retry doubles it (default 1s).
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the wait between attempts (default 5m).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one attempt, connection to answer (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// PollInterval is how often a replica looks for deliveries due (default 1s); a replica that
	// emits an event sends it at once.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// WithDefaults fills the zero values.
func (o Options) WithDefaults() Options {
	if o.Enabled == nil {
		t := true
		o.Enabled = &t
	}
	if o.Thresholds == nil {
		o.Thresholds = DefaultThresholds
	}
	d := &o.Delivery
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 10
	}
	if d.InitialBackoff <= 0 {
		d.InitialBackoff = time.Second
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = 5 * time.Minute
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	if d.PollInterval <= 0 {
		d.PollInterval = time.Second
	}
	return o
}

// Validate checks the section; its errors name the key (alerts.…).
func (o Options) Validate() error {
	if i, err := CheckPercents(o.Thresholds); err != nil {
		return fmt.Errorf("alerts.thresholds[%d]: %w", i, err)
	}
	d := o.Delivery
	if d.MaxAttempts < 0 {
		return errors.New("alerts.delivery.max_attempts: must not be negative")
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"initial_backoff", d.InitialBackoff}, {"max_backoff", d.MaxBackoff}, {"timeout", d.Timeout}, {"poll_interval", d.PollInterval}} {
		if f.v < 0 {
			return fmt.Errorf("alerts.delivery.%s: %s is negative", f.name, f.v)
		}
	}
	return nil
}

// CheckPercents checks a list of thresholds: integers from 1 to MaxPercent, ascending, each
// once. It returns the index of the first bad one.
func CheckPercents(ps []int) (int, error) {
	for i, p := range ps {
		if p < 1 || p > MaxPercent {
			return i, fmt.Errorf("%d is not a percent from 1 to %d", p, MaxPercent)
		}
		if i > 0 && p <= ps[i-1] {
			return i, fmt.Errorf("%d does not come after %d: list thresholds once each, ascending", p, ps[i-1])
		}
	}
	return 0, nil
}

// Policy is the outbound address policy of webhook calls: the providers' allow list, and
// private networks as AllowPrivateNetwork says.
func (o Options) Policy(allow []netip.Prefix) outbound.Policy {
	return outbound.Policy{AllowPrivate: o.AllowPrivateNetwork, Allow: allow}
}

// CheckURL checks a webhook URL before it is stored: http or https, a host, no credentials or
// fragment, and a host the address policy does not refuse (literal addresses and localhost
// names now, before any connection; other names when dialed, on what they resolve to).
func CheckURL(raw string, p outbound.Policy) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	if len(raw) > 2000 {
		return errors.New("at most 2000 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http or https URL")
	case u.Hostname() == "":
		return errors.New("must name a host")
	case u.User != nil:
		return errors.New("must not carry credentials: the signature authenticates the gateway")
	case u.Fragment != "" || u.RawFragment != "":
		return errors.New("must not have a fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("has an invalid port")
		}
	}
	if err := p.CheckHost(u.Hostname()); err != nil {
		return err
	}
	return nil
}
