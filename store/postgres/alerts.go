package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

var _ store.AlertStore = (*Store)(nil)

// AlertThresholds returns every stored threshold set by subject.
func (s *Store) AlertThresholds(ctx context.Context) ([]store.AlertThresholds, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject_type, subject_id, thresholds, updated_at
		FROM alert_thresholds ORDER BY subject_type, subject_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: alert thresholds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AlertThresholds, error) {
		var t store.AlertThresholds
		var raw []byte
		if err := row.Scan(&t.SubjectType, &t.SubjectID, &raw, &t.UpdatedAt); err != nil {
			return t, err
		}
		t.UpdatedAt = t.UpdatedAt.UTC()
		return t, json.Unmarshal(raw, &t.Percents)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: alert thresholds: %w", err)
	}
	return out, nil
}

// PutAlertThresholds inserts or replaces a subject's thresholds.
func (s *Store) PutAlertThresholds(ctx context.Context, t store.AlertThresholds) error {
	raw, err := json.Marshal(t.Percents)
	if err != nil {
		return fmt.Errorf("postgres: put alert thresholds: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO alert_thresholds (subject_type, subject_id, thresholds, updated_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (subject_type, subject_id) DO UPDATE SET thresholds = excluded.thresholds, updated_at = excluded.updated_at`,
		t.SubjectType, t.SubjectID, raw)
	if err != nil {
		return fmt.Errorf("postgres: put alert thresholds: %w", mapErr(err))
	}
	return nil
}

// DeleteAlertThresholds removes a subject's thresholds; ErrNotFound when there are none.
func (s *Store) DeleteAlertThresholds(ctx context.Context, subjectType, subjectID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM alert_thresholds WHERE subject_type = $1 AND subject_id = $2`, subjectType, subjectID)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete alert thresholds: %w", err)
	}
	return nil
}

// CreateAlertWebhook inserts a webhook.
func (s *Store) CreateAlertWebhook(ctx context.Context, w store.AlertWebhook) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO alert_webhooks (id, name, url, secret, enabled, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, w.ID, w.Name, w.URL, w.Secret, w.Enabled, w.CreatedBy, orNow(w.CreatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create alert webhook: %w", mapErr(err))
	}
	return nil
}

const webhookColumns = `id, name, url, secret, enabled, created_by, created_at`

func scanWebhook(row pgx.Row) (store.AlertWebhook, error) {
	var w store.AlertWebhook
	err := row.Scan(&w.ID, &w.Name, &w.URL, &w.Secret, &w.Enabled, &w.CreatedBy, &w.CreatedAt)
	w.CreatedAt = w.CreatedAt.UTC()
	return w, err
}

// GetAlertWebhook returns a webhook or ErrNotFound.
func (s *Store) GetAlertWebhook(ctx context.Context, id string) (store.AlertWebhook, error) {
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookColumns+` FROM alert_webhooks WHERE id = $1`, id))
	if err != nil {
		return store.AlertWebhook{}, fmt.Errorf("postgres: get alert webhook: %w", notFound(err))
	}
	return w, nil
}

// ListAlertWebhooks returns webhooks newest first.
func (s *Store) ListAlertWebhooks(ctx context.Context, f store.AlertWebhookFilter) ([]store.AlertWebhook, error) {
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM alert_webhooks
		ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert webhooks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AlertWebhook, error) { return scanWebhook(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert webhooks: %w", err)
	}
	return out, nil
}

// SetAlertWebhookSecret replaces a webhook's stored secret.
func (s *Store) SetAlertWebhookSecret(ctx context.Context, id, secret string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE alert_webhooks SET secret = $2 WHERE id = $1`, id, secret)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: set alert webhook secret: %w", err)
	}
	return nil
}

// DeleteAlertWebhook removes a webhook; its deliveries go with it.
func (s *Store) DeleteAlertWebhook(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM alert_webhooks WHERE id = $1`, id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("postgres: delete alert webhook: %w", err)
	}
	return nil
}

// InsertAlertEvent stores an event once per crossing and, with it, its deliveries: the unique
// crossing key decides which replica's insert wins.
func (s *Store) InsertAlertEvent(ctx context.Context, e store.AlertEvent) (bool, error) {
	var inserted bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO alert_events (id, kind, subject_type, subject_id, tenant_id, period,
				threshold, limit_value, used, payload, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (kind, subject_type, subject_id, period, threshold) DO NOTHING`,
			e.ID, e.Kind, e.SubjectType, e.SubjectID, e.TenantID, e.Period, e.Threshold, e.Limit, e.Used,
			string(e.Payload), orNow(e.CreatedAt))
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		inserted = true
		_, err = tx.Exec(ctx, `INSERT INTO alert_deliveries (id, event_id, webhook_id, state, next_attempt_at, created_at, updated_at)
			SELECT $1 || ':' || w.id, $1, w.id, 'pending', $2, $2, $2 FROM alert_webhooks w WHERE w.enabled`,
			e.ID, orNow(e.CreatedAt))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: insert alert event: %w", mapErr(err))
	}
	return inserted, nil
}

// ListAlertEvents returns events newest first.
func (s *Store) ListAlertEvents(ctx context.Context, f store.AlertEventFilter) ([]store.AlertEvent, error) {
	var w where
	for _, c := range []struct{ expr, v string }{{"kind = ", f.Kind}, {"subject_type = ", f.SubjectType},
		{"subject_id = ", f.SubjectID}, {"tenant_id = ", f.TenantID}} {
		if c.v != "" {
			w.add(c.expr, c.v)
		}
	}
	if f.Threshold > 0 {
		w.add("threshold = ", f.Threshold)
	}
	if !f.From.IsZero() {
		w.add("created_at >= ", f.From)
	}
	if !f.To.IsZero() {
		w.add("created_at < ", f.To)
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT id, kind, subject_type, subject_id, tenant_id, period, threshold,
		limit_value, used, payload, created_at FROM alert_events`+w.sql()+
		` ORDER BY created_at DESC, id DESC`+w.page(limit, offset), w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AlertEvent, error) {
		var e store.AlertEvent
		var payload string
		err := row.Scan(&e.ID, &e.Kind, &e.SubjectType, &e.SubjectID, &e.TenantID, &e.Period, &e.Threshold,
			&e.Limit, &e.Used, &payload, &e.CreatedAt)
		e.Payload, e.CreatedAt = []byte(payload), e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert events: %w", err)
	}
	return out, nil
}

// ClaimAlertDelivery takes the oldest due delivery no replica holds. SKIP LOCKED lets replicas
// claim side by side; the lease condition, checked again on the locked row, keeps a delivery to
// one replica until its lease ends.
func (s *Store) ClaimAlertDelivery(ctx context.Context, now time.Time, lease time.Duration) (store.AlertJob, bool, error) {
	var j store.AlertJob
	var payload string
	err := s.pool.QueryRow(ctx, `UPDATE alert_deliveries d SET lease_until = $2, attempts = d.attempts + 1, updated_at = $1
		FROM alert_events e, alert_webhooks w
		WHERE d.id = (SELECT id FROM alert_deliveries WHERE state = 'pending' AND next_attempt_at <= $1
				AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
			AND d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until < $1)
			AND e.id = d.event_id AND w.id = d.webhook_id
		RETURNING d.id, d.attempts, e.id, e.kind, w.id, w.url, w.secret, e.payload`, now, now.Add(lease)).
		Scan(&j.DeliveryID, &j.Attempt, &j.EventID, &j.Kind, &j.WebhookID, &j.URL, &j.Secret, &payload)
	if err == pgx.ErrNoRows {
		return store.AlertJob{}, false, nil
	}
	if err != nil {
		return store.AlertJob{}, false, fmt.Errorf("postgres: claim alert delivery: %w", err)
	}
	j.Payload = []byte(payload)
	return j, true, nil
}

// RecordAlertAttempt logs an attempt and moves its delivery on, releasing its lease.
func (s *Store) RecordAlertAttempt(ctx context.Context, a store.AlertAttempt, delivered bool) error {
	state := store.DeliveryFailed
	switch {
	case delivered:
		state, a.NextAttemptAt = store.DeliveryDelivered, nil
	case a.NextAttemptAt != nil:
		state = store.DeliveryPending
	}
	at := orNow(a.At)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO alert_delivery_attempts (delivery_id, attempt, status_code, error,
				duration_ms, next_attempt_at, at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (delivery_id, attempt) DO NOTHING`,
			a.DeliveryID, a.Attempt, a.StatusCode, a.Error, a.DurationMS, a.NextAttemptAt, at); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE alert_deliveries SET state = $2, next_attempt_at = $3, lease_until = NULL,
			updated_at = $4 WHERE id = $1`, a.DeliveryID, state, a.NextAttemptAt, at)
		return oneRow(tag, err)
	})
	if err != nil {
		return fmt.Errorf("postgres: record alert attempt: %w", mapErr(err))
	}
	return nil
}

// ListAlertDeliveries returns deliveries newest first, each with its attempts.
func (s *Store) ListAlertDeliveries(ctx context.Context, f store.AlertDeliveryFilter) ([]store.AlertDelivery, error) {
	var w where
	for _, c := range []struct{ expr, v string }{{"d.event_id = ", f.EventID}, {"d.webhook_id = ", f.WebhookID},
		{"d.state = ", f.State}, {"e.tenant_id = ", f.TenantID}} {
		if c.v != "" {
			w.add(c.expr, c.v)
		}
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT d.id, d.event_id, d.webhook_id, d.state, d.attempts, d.next_attempt_at,
		d.created_at, d.updated_at FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id`+w.sql()+
		` ORDER BY d.created_at DESC, d.id DESC`+w.page(limit, offset), w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AlertDelivery, error) {
		var d store.AlertDelivery
		err := row.Scan(&d.ID, &d.EventID, &d.WebhookID, &d.State, &d.Attempts, &d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt)
		d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = utcPtr(d.NextAttemptAt), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
		return d, err
	})
	if err != nil || len(out) == 0 {
		if err != nil {
			err = fmt.Errorf("postgres: list alert deliveries: %w", err)
		}
		return out, err
	}
	ids := make([]string, len(out))
	at := make(map[string]int, len(out))
	for i, d := range out {
		ids[i], at[d.ID] = d.ID, i
	}
	rows, err = s.pool.Query(ctx, `SELECT delivery_id, attempt, status_code, error, duration_ms, next_attempt_at, at
		FROM alert_delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert attempts: %w", err)
	}
	attempts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AlertAttempt, error) {
		var a store.AlertAttempt
		err := row.Scan(&a.DeliveryID, &a.Attempt, &a.StatusCode, &a.Error, &a.DurationMS, &a.NextAttemptAt, &a.At)
		a.NextAttemptAt, a.At = utcPtr(a.NextAttemptAt), a.At.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list alert attempts: %w", err)
	}
	for _, a := range attempts {
		d := &out[at[a.DeliveryID]]
		d.Log = append(d.Log, a)
	}
	return out, nil
}
