package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/store"
)

// SignatureHeader carries a delivery's signature: "t=<unix seconds>,v1=<hex HMAC-SHA256>", the
// HMAC keyed with the webhook's secret over "<t>.<body>", as Stripe signs its webhooks. The
// timestamp inside the signed text lets a receiver refuse old replays.
const SignatureHeader = "X-Llmgate-Signature"

// Sign returns the SignatureHeader value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// deliverLoop sends due deliveries until ctx ends: at once when this replica emits an event,
// else every PollInterval (events other replicas emitted, retries that came due).
func (n *Notifier) deliverLoop(ctx context.Context) {
	t := time.NewTicker(n.o.Delivery.PollInterval)
	defer t.Stop()
	for {
		for ctx.Err() == nil && n.deliverOne(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
	}
}

// deliverOne claims a due delivery and makes one attempt; false when there was none (or the
// store failed).
func (n *Notifier) deliverOne(ctx context.Context) bool {
	o := n.o.Delivery
	// The lease outlasts an attempt by far, so no other replica sends it meanwhile.
	job, ok, err := n.d.Store.ClaimAlertDelivery(ctx, n.now().UTC(), o.Timeout+30*time.Second)
	if err != nil {
		if ctx.Err() == nil {
			n.d.Log.Warn("alerts: claiming a delivery failed", "err", err)
		}
		return false
	}
	if !ok {
		return false
	}
	// An attempt under way finishes even when the process stops: its result is recorded.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Timeout)
	start := n.now()
	status, sendErr := n.send(actx, job)
	cancel()
	end := n.now()
	a := store.AlertAttempt{DeliveryID: job.DeliveryID, Attempt: job.Attempt, StatusCode: status,
		DurationMS: end.Sub(start).Milliseconds(), At: end.UTC()}
	delivered := sendErr == nil
	result := "delivered"
	if !delivered {
		a.Error = sendErr.Error()
		result = "failed"
		if job.Attempt < o.MaxAttempts {
			next := end.Add(backoff(o, job.Attempt)).UTC()
			a.NextAttemptAt, result = &next, "retry"
		}
	}
	n.sent.WithLabelValues(result).Inc()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := n.d.Store.RecordAlertAttempt(rctx, a, delivered); err != nil {
		// The lease ends and the delivery is sent again: receivers deduplicate by event id.
		n.d.Log.Warn("alerts: recording a delivery attempt failed", "delivery_id", job.DeliveryID, "err", err)
		return false
	}
	if !delivered {
		n.d.Log.Warn("alerts: webhook delivery failed", "delivery_id", job.DeliveryID, "attempt", job.Attempt,
			"status", status, "err", sendErr, "retry", a.NextAttemptAt != nil)
	}
	return true
}

// send POSTs the event and returns the webhook's status (0 when none came); a status other than
// 2xx is an error, and so is a secret that does not open (nothing is sent then).
func (n *Notifier) send(ctx context.Context, job store.AlertJob) (int, error) {
	secret, _, err := OpenSecret(n.d.Secrets, job.WebhookID, job.Secret)
	if err != nil {
		n.d.Log.Error("alerts: a webhook's stored secret does not open: its deliveries fail until a key that sealed it is configured (secrets.previous_keys)",
			"webhook_id", job.WebhookID, "delivery_id", job.DeliveryID, "err", err)
		return 0, errors.New("the webhook's stored secret does not open: " + err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, job.URL, bytes.NewReader(job.Payload))
	if err != nil {
		return 0, errors.New("invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "llmgate-alerts/1")
	req.Header.Set("X-Llmgate-Event", job.Kind)
	req.Header.Set("X-Llmgate-Event-Id", job.EventID)
	req.Header.Set("X-Llmgate-Delivery", job.DeliveryID)
	req.Header.Set(SignatureHeader, Sign(secret, n.now(), job.Payload))
	resp, err := n.client.Do(req)
	if err != nil {
		var refused *outbound.RefusedError
		if errors.As(err, &refused) {
			return 0, refused
		}
		if ctx.Err() != nil {
			return 0, errors.New("timed out")
		}
		var ue *url.Error
		if errors.As(err, &ue) { // the URL is known: keep the cause
			err = ue.Err
		}
		return 0, errors.New("connection failed: " + err.Error())
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, errors.New("webhook answered " + resp.Status)
	}
	return resp.StatusCode, nil
}

// backoff is the wait after a failed attempt (1-based): InitialBackoff doubled per attempt, up
// to MaxBackoff, less up to a fifth at random so that retries of many deliveries spread out.
func backoff(o DeliveryOptions, attempt int) time.Duration {
	d := o.InitialBackoff
	for i := 1; i < attempt && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
