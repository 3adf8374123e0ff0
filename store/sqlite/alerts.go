package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llmgate/llmgate/store"
)

var _ store.AlertStore = (*Store)(nil)

// AlertThresholds returns every stored threshold set by subject.
func (s *Store) AlertThresholds(ctx context.Context) ([]store.AlertThresholds, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT subject_type, subject_id, thresholds, updated_at
		FROM alert_thresholds ORDER BY subject_type, subject_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: alert thresholds: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.AlertThresholds, error) {
		var t store.AlertThresholds
		var raw string
		var updated int64
		if err := row.Scan(&t.SubjectType, &t.SubjectID, &raw, &updated); err != nil {
			return t, err
		}
		t.UpdatedAt = fromMicros(updated)
		return t, json.Unmarshal([]byte(raw), &t.Percents)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: alert thresholds: %w", err)
	}
	return out, nil
}

// PutAlertThresholds inserts or replaces a subject's thresholds.
func (s *Store) PutAlertThresholds(ctx context.Context, t store.AlertThresholds) error {
	raw, err := json.Marshal(t.Percents)
	if err != nil {
		return fmt.Errorf("sqlite: put alert thresholds: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO alert_thresholds (subject_type, subject_id, thresholds, updated_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (subject_type, subject_id) DO UPDATE SET thresholds = excluded.thresholds, updated_at = excluded.updated_at`,
		t.SubjectType, t.SubjectID, string(raw), micros(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: put alert thresholds: %w", mapErr(err))
	}
	return nil
}

// DeleteAlertThresholds removes a subject's thresholds; ErrNotFound when there are none.
func (s *Store) DeleteAlertThresholds(ctx context.Context, subjectType, subjectID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM alert_thresholds WHERE subject_type = ? AND subject_id = ?`, subjectType, subjectID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete alert thresholds: %w", err)
	}
	return nil
}

// CreateAlertWebhook inserts a webhook.
func (s *Store) CreateAlertWebhook(ctx context.Context, w store.AlertWebhook) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO alert_webhooks (id, name, url, secret, enabled, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, w.ID, w.Name, w.URL, w.Secret, w.Enabled, w.CreatedBy, micros(orNow(w.CreatedAt)))
	if err != nil {
		return fmt.Errorf("sqlite: create alert webhook: %w", mapErr(err))
	}
	return nil
}

const webhookColumns = `id, name, url, secret, enabled, created_by, created_at`

func scanWebhook(row scanner) (store.AlertWebhook, error) {
	var w store.AlertWebhook
	var created int64
	err := row.Scan(&w.ID, &w.Name, &w.URL, &w.Secret, &w.Enabled, &w.CreatedBy, &created)
	w.CreatedAt = fromMicros(created)
	return w, err
}

// GetAlertWebhook returns a webhook or ErrNotFound.
func (s *Store) GetAlertWebhook(ctx context.Context, id string) (store.AlertWebhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM alert_webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.AlertWebhook{}, fmt.Errorf("sqlite: get alert webhook: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.AlertWebhook{}, fmt.Errorf("sqlite: get alert webhook: %w", err)
	}
	return w, nil
}

// ListAlertWebhooks returns webhooks newest first.
func (s *Store) ListAlertWebhooks(ctx context.Context, f store.AlertWebhookFilter) ([]store.AlertWebhook, error) {
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+webhookColumns+` FROM alert_webhooks
		ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert webhooks: %w", err)
	}
	out, err := collect(rows, scanWebhook)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert webhooks: %w", err)
	}
	return out, nil
}

// SetAlertWebhookSecret replaces a webhook's stored secret.
func (s *Store) SetAlertWebhookSecret(ctx context.Context, id, secret string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE alert_webhooks SET secret = ? WHERE id = ?`, secret, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: set alert webhook secret: %w", err)
	}
	return nil
}

// DeleteAlertWebhook removes a webhook; its deliveries go with it.
func (s *Store) DeleteAlertWebhook(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM alert_webhooks WHERE id = ?`, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: delete alert webhook: %w", err)
	}
	return nil
}

// InsertAlertEvent stores an event once per crossing and, with it, its deliveries.
func (s *Store) InsertAlertEvent(ctx context.Context, e store.AlertEvent) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: insert alert event: %w", err)
	}
	defer tx.Rollback()
	created := micros(orNow(e.CreatedAt))
	res, err := tx.ExecContext(ctx, `INSERT INTO alert_events (id, kind, subject_type, subject_id, tenant_id, period,
			threshold, limit_value, used, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, subject_type, subject_id, period, threshold) DO NOTHING`,
		e.ID, e.Kind, e.SubjectType, e.SubjectID, e.TenantID, e.Period, e.Threshold, e.Limit, e.Used, string(e.Payload), created)
	if err != nil {
		return false, fmt.Errorf("sqlite: insert alert event: %w", mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_deliveries (id, event_id, webhook_id, state, next_attempt_at, created_at, updated_at)
		SELECT ? || ':' || w.id, ?, w.id, 'pending', ?, ?, ? FROM alert_webhooks w WHERE w.enabled = 1`,
		e.ID, e.ID, created, created, created); err != nil {
		return false, fmt.Errorf("sqlite: insert alert deliveries: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: insert alert event: %w", err)
	}
	return true, nil
}

// ListAlertEvents returns events newest first.
func (s *Store) ListAlertEvents(ctx context.Context, f store.AlertEventFilter) ([]store.AlertEvent, error) {
	var w where
	for _, c := range []struct{ expr, v string }{{"kind = ?", f.Kind}, {"subject_type = ?", f.SubjectType},
		{"subject_id = ?", f.SubjectID}, {"tenant_id = ?", f.TenantID}} {
		if c.v != "" {
			w.add(c.expr, c.v)
		}
	}
	if f.Threshold > 0 {
		w.add("threshold = ?", f.Threshold)
	}
	if !f.From.IsZero() {
		w.add("created_at >= ?", micros(f.From))
	}
	if !f.To.IsZero() {
		w.add("created_at < ?", micros(f.To))
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT id, kind, subject_type, subject_id, tenant_id, period, threshold,
		limit_value, used, payload, created_at FROM alert_events`+w.sql()+
		` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert events: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.AlertEvent, error) {
		var e store.AlertEvent
		var payload string
		var created int64
		err := row.Scan(&e.ID, &e.Kind, &e.SubjectType, &e.SubjectID, &e.TenantID, &e.Period, &e.Threshold,
			&e.Limit, &e.Used, &payload, &created)
		e.Payload, e.CreatedAt = []byte(payload), fromMicros(created)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert events: %w", err)
	}
	return out, nil
}

// ClaimAlertDelivery takes the oldest due delivery no one holds, in one write transaction (the
// single writer serialises claims).
func (s *Store) ClaimAlertDelivery(ctx context.Context, now time.Time, lease time.Duration) (store.AlertJob, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.AlertJob{}, false, fmt.Errorf("sqlite: claim alert delivery: %w", err)
	}
	defer tx.Rollback()
	var j store.AlertJob
	var payload string
	err = tx.QueryRowContext(ctx, `SELECT d.id, d.attempts + 1, e.id, e.kind, w.id, w.url, w.secret, e.payload
		FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id JOIN alert_webhooks w ON w.id = d.webhook_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)
		ORDER BY d.next_attempt_at, d.id LIMIT 1`, micros(now), micros(now)).
		Scan(&j.DeliveryID, &j.Attempt, &j.EventID, &j.Kind, &j.WebhookID, &j.URL, &j.Secret, &payload)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AlertJob{}, false, nil
	}
	if err != nil {
		return store.AlertJob{}, false, fmt.Errorf("sqlite: claim alert delivery: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id = ?`, micros(now.Add(lease)), micros(now), j.DeliveryID); err != nil {
		return store.AlertJob{}, false, fmt.Errorf("sqlite: claim alert delivery: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.AlertJob{}, false, fmt.Errorf("sqlite: claim alert delivery: %w", err)
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
	at := micros(orNow(a.At))
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: record alert attempt: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_delivery_attempts (delivery_id, attempt, status_code, error,
			duration_ms, next_attempt_at, at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (delivery_id, attempt) DO NOTHING`,
		a.DeliveryID, a.Attempt, a.StatusCode, a.Error, a.DurationMS, nullMicros(a.NextAttemptAt), at); err != nil {
		return fmt.Errorf("sqlite: record alert attempt: %w", mapErr(err))
	}
	res, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET state = ?, next_attempt_at = ?, lease_until = NULL,
		updated_at = ? WHERE id = ?`, state, nullMicros(a.NextAttemptAt), at, a.DeliveryID)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("sqlite: record alert attempt: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: record alert attempt: %w", err)
	}
	return nil
}

// ListAlertDeliveries returns deliveries newest first, each with its attempts.
func (s *Store) ListAlertDeliveries(ctx context.Context, f store.AlertDeliveryFilter) ([]store.AlertDelivery, error) {
	var w where
	for _, c := range []struct{ expr, v string }{{"d.event_id = ?", f.EventID}, {"d.webhook_id = ?", f.WebhookID},
		{"d.state = ?", f.State}, {"e.tenant_id = ?", f.TenantID}} {
		if c.v != "" {
			w.add(c.expr, c.v)
		}
	}
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT d.id, d.event_id, d.webhook_id, d.state, d.attempts, d.next_attempt_at,
		d.created_at, d.updated_at FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id`+w.sql()+
		` ORDER BY d.created_at DESC, d.id DESC LIMIT ? OFFSET ?`, append(w.args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert deliveries: %w", err)
	}
	out, err := collect(rows, func(row scanner) (store.AlertDelivery, error) {
		var d store.AlertDelivery
		var next sql.NullInt64
		var created, updated int64
		err := row.Scan(&d.ID, &d.EventID, &d.WebhookID, &d.State, &d.Attempts, &next, &created, &updated)
		d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = fromNullMicros(next), fromMicros(created), fromMicros(updated)
		return d, err
	})
	if err != nil || len(out) == 0 {
		if err != nil {
			err = fmt.Errorf("sqlite: list alert deliveries: %w", err)
		}
		return out, err
	}
	at := make(map[string]int, len(out))
	args := make([]any, len(out))
	for i, d := range out {
		at[d.ID], args[i] = i, d.ID
	}
	rows, err = s.r.QueryContext(ctx, `SELECT delivery_id, attempt, status_code, error, duration_ms, next_attempt_at, at
		FROM alert_delivery_attempts WHERE delivery_id IN (?`+strings.Repeat(", ?", len(out)-1)+`) ORDER BY delivery_id, attempt`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert attempts: %w", err)
	}
	attempts, err := collect(rows, func(row scanner) (store.AlertAttempt, error) {
		var a store.AlertAttempt
		var next sql.NullInt64
		var when int64
		err := row.Scan(&a.DeliveryID, &a.Attempt, &a.StatusCode, &a.Error, &a.DurationMS, &next, &when)
		a.NextAttemptAt, a.At = fromNullMicros(next), fromMicros(when)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list alert attempts: %w", err)
	}
	for _, a := range attempts {
		d := &out[at[a.DeliveryID]]
		d.Log = append(d.Log, a)
	}
	return out, nil
}
