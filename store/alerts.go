package store

import (
	"context"
	"time"
)

// Alert delivery states.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // the webhook answered 2xx
	DeliveryFailed    = "failed"    // every attempt failed
)

// AlertThresholds are the alert thresholds of one subject: SubjectType "tenant", "user" or "key",
// or "global" (SubjectID "") for every subject. Percents maps an alert kind to the percents of
// the limit at which an event is emitted, ascending; a kind it does not name inherits (the
// subject's tenant… see billing/alerts), an empty list turns that kind off.
type AlertThresholds struct {
	SubjectType string
	SubjectID   string
	Percents    map[string][]int
	UpdatedAt   time.Time
}

// AlertWebhook is an endpoint alert events are delivered to. Secret signs the deliveries; it is
// stored sealed with the secret key (billing/alerts.OpenSecret), and the admin API shows it only
// when the webhook is made.
type AlertWebhook struct {
	ID        string
	Name      string
	URL       string
	Secret    string
	Enabled   bool
	CreatedBy string
	CreatedAt time.Time
}

// AlertWebhookFilter narrows ListAlertWebhooks.
type AlertWebhookFilter struct {
	Limit  int // 0 means a default of 100
	Offset int
}

// AlertEvent is one threshold crossing: a subject's use of one limit (Kind) in one Period reached
// Threshold percent. (Kind, SubjectType, SubjectID, Period, Threshold) is unique, so a crossing
// seen by several replicas is stored once.
type AlertEvent struct {
	ID          string
	Kind        string
	SubjectType string
	SubjectID   string
	TenantID    string
	Period      string
	Threshold   int
	Limit       string // decimal, in the kind's unit
	Used        string
	Payload     []byte // the JSON body every delivery of the event sends
	CreatedAt   time.Time
}

// AlertEventFilter narrows ListAlertEvents. Zero values mean "any"; CreatedAt in [From, To).
type AlertEventFilter struct {
	Kind        string
	SubjectType string
	SubjectID   string
	TenantID    string
	Threshold   int
	From, To    time.Time
	Limit       int // 0 means a default of 100
	Offset      int
}

// AlertDelivery is the delivery of one event to one webhook, with its attempts (oldest first).
type AlertDelivery struct {
	ID            string
	EventID       string
	WebhookID     string
	State         string // DeliveryPending, DeliveryDelivered or DeliveryFailed
	Attempts      int
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Log           []AlertAttempt
}

// AlertAttempt is one try at delivering: the webhook's status (0 when it gave none), the error,
// and the retry it planned (nil when none: delivered, or out of attempts).
type AlertAttempt struct {
	DeliveryID    string
	Attempt       int
	StatusCode    int
	Error         string
	DurationMS    int64
	NextAttemptAt *time.Time
	At            time.Time
}

// AlertDeliveryFilter narrows ListAlertDeliveries. Zero values mean "any".
type AlertDeliveryFilter struct {
	EventID   string
	WebhookID string
	State     string
	TenantID  string // the event's tenant
	Limit     int    // 0 means a default of 100
	Offset    int
}

// AlertJob is a delivery a replica has claimed: what to send where.
type AlertJob struct {
	DeliveryID string
	Attempt    int // the attempt this is, from 1
	EventID    string
	Kind       string
	WebhookID  string
	URL        string
	Secret     string // as stored: sealed (see billing/alerts.OpenSecret)
	Payload    []byte
}

// AlertStore keeps alert thresholds, webhooks, events and deliveries.
type AlertStore interface {
	// AlertThresholds returns every stored threshold set.
	AlertThresholds(ctx context.Context) ([]AlertThresholds, error)
	// PutAlertThresholds inserts or replaces a subject's thresholds, setting UpdatedAt to now.
	PutAlertThresholds(ctx context.Context, t AlertThresholds) error
	// DeleteAlertThresholds removes a subject's thresholds; ErrNotFound when there are none.
	DeleteAlertThresholds(ctx context.Context, subjectType, subjectID string) error

	// CreateAlertWebhook inserts a webhook; ErrConflict if the id exists.
	CreateAlertWebhook(ctx context.Context, w AlertWebhook) error
	// GetAlertWebhook returns a webhook, secret included, or ErrNotFound.
	GetAlertWebhook(ctx context.Context, id string) (AlertWebhook, error)
	// ListAlertWebhooks returns webhooks newest first.
	ListAlertWebhooks(ctx context.Context, f AlertWebhookFilter) ([]AlertWebhook, error)
	// SetAlertWebhookSecret replaces a webhook's stored secret (sealed again with another key);
	// ErrNotFound when there is no such webhook.
	SetAlertWebhookSecret(ctx context.Context, id, secret string) error
	// DeleteAlertWebhook removes a webhook and its deliveries; ErrNotFound when there is none.
	DeleteAlertWebhook(ctx context.Context, id string) error

	// InsertAlertEvent stores an event unless its crossing is stored already, and in the same
	// transaction a pending delivery (due at once) to every enabled webhook. It reports whether
	// the event was new.
	InsertAlertEvent(ctx context.Context, e AlertEvent) (bool, error)
	// ListAlertEvents returns events newest first.
	ListAlertEvents(ctx context.Context, f AlertEventFilter) ([]AlertEvent, error)

	// ClaimAlertDelivery takes the oldest pending delivery due at now that no replica holds,
	// holding it until now+lease, and counts the attempt; ok is false when there is none.
	ClaimAlertDelivery(ctx context.Context, now time.Time, lease time.Duration) (job AlertJob, ok bool, err error)
	// RecordAlertAttempt logs an attempt and moves its delivery on: delivered, pending until
	// a.NextAttemptAt, or failed when that is nil and the attempt did not deliver.
	RecordAlertAttempt(ctx context.Context, a AlertAttempt, delivered bool) error
	// ListAlertDeliveries returns deliveries newest first, each with its attempts.
	ListAlertDeliveries(ctx context.Context, f AlertDeliveryFilter) ([]AlertDelivery, error)
}
