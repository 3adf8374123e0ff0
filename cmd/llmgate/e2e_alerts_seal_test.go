package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/store"
)

// Webhook secrets are sealed at rest with the secret keyring, as provider credentials are: these
// tests read the rows with SQL, have deliveries verified by a receiver on loopback, and rotate
// the key under running deliveries.

// sealReceiver verifies every delivery's signature with the secret it currently expects and
// keeps, per event id, whether a delivery verified.
type sealReceiver struct {
	srv    *httptest.Server
	secret atomic.Value // string

	mu       sync.Mutex
	verified map[string]int // event id → deliveries whose signature verified
	bad      []string       // deliveries whose signature did not
}

func newSealReceiver(t *testing.T) *sealReceiver {
	r := &sealReceiver{verified: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		secret, _ := r.secret.Load().(string)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := verifySignature(secret, req.Header.Get("X-Llmgate-Signature"), body); err != nil {
			r.bad = append(r.bad, req.Header.Get("X-Llmgate-Event-Id")+": "+err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.verified[req.Header.Get("X-Llmgate-Event-Id")]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitVerified waits for a delivery of the event whose signature verifies, failing on one that
// does not.
func (r *sealReceiver) waitVerified(t *testing.T, eventID, what string) {
	t.Helper()
	waitFor(t, 20*time.Second, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.bad) > 0 {
			t.Fatalf("%s: deliveries not signed with the webhook's secret: %v", what, r.bad)
		}
		return r.verified[eventID] > 0
	})
}

// withFastDelivery has deliveries looked for and retried quickly, and alerts on or off.
func withFastDelivery(enabled bool) envOption {
	return func(c *Config) {
		c.Alerts.Enabled = &enabled
		c.Alerts.Delivery.PollInterval = 50 * time.Millisecond
		c.Alerts.Delivery.InitialBackoff = 100 * time.Millisecond
		c.Alerts.Delivery.MaxAttempts = 2
	}
}

// stoppableReplica starts a replica with the env's configuration changed by opts; stop shuts it
// down (at the latest when the test ends), so that another can take the deliveries over.
func (e *env) stoppableReplica(log *slog.Logger, opts ...envOption) (a *app, stop func()) {
	e.t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := e.cfg
	for _, o := range opts {
		o(&cfg)
	}
	cfg.Usage.SpoolDir = filepath.Join(e.t.TempDir(), "spool")
	a, err := start(context.Background(), cfg, log)
	if err != nil {
		e.t.Fatalf("start gateway: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.shutdown(ctx); err != nil {
				e.t.Errorf("shutdown: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return a, stop
}

// webhookRow reads a webhook's secret column straight from the database ("" when no row).
func (e *env) webhookRow(id string) string {
	e.t.Helper()
	var v string
	e.webhookSQL(func(pg *pgx.Conn, lite *sql.DB) error {
		var err error
		if pg != nil {
			err = pg.QueryRow(context.Background(), `SELECT secret FROM alert_webhooks WHERE id = $1`, id).Scan(&v)
		} else {
			err = lite.QueryRow(`SELECT secret FROM alert_webhooks WHERE id = ?`, id).Scan(&v)
		}
		if err == pgx.ErrNoRows || err == sql.ErrNoRows {
			return nil
		}
		return err
	})
	return v
}

// setWebhookRow writes a webhook's secret column as a gateway before sealing stored it.
func (e *env) setWebhookRow(id, secret string) {
	e.t.Helper()
	e.webhookSQL(func(pg *pgx.Conn, lite *sql.DB) error {
		if pg != nil {
			_, err := pg.Exec(context.Background(), `UPDATE alert_webhooks SET secret = $1 WHERE id = $2`, secret, id)
			return err
		}
		_, err := lite.Exec(`UPDATE alert_webhooks SET secret = ? WHERE id = ?`, secret, id)
		return err
	})
}

func (e *env) webhookSQL(f func(pg *pgx.Conn, lite *sql.DB) error) {
	e.t.Helper()
	ctx := context.Background()
	if e.cfg.DatabaseURL != "" {
		conn, err := pgx.Connect(ctx, e.cfg.DatabaseURL)
		if err != nil {
			e.t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := f(conn, nil); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.cfg.DataDir, "llmgate.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if err := f(nil, db); err != nil {
		e.t.Fatal(err)
	}
}

// createSealedWebhook makes a webhook to the receiver over replica a's admin API and returns its
// id and secret.
func (e *env) createSealedWebhook(a *app, recv *sealReceiver) (id, secret string) {
	e.t.Helper()
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	e.catalogCall(a, http.MethodPost, "/admin/alerts/webhooks", `{"name":"sealed","url":"`+recv.srv.URL+`/hook"}`, http.StatusCreated, &hook)
	if hook.ID == "" || !strings.HasPrefix(hook.Secret, "whsec_") {
		e.t.Fatalf("create webhook answered id %q, secret %q", hook.ID, hook.Secret)
	}
	recv.secret.Store(hook.Secret)
	return hook.ID, hook.Secret
}

// emitEvent stores an alert event (as a crossing would), which queues a delivery to every
// enabled webhook, and returns its id.
func (e *env) emitEvent(a *app, n int) string {
	e.t.Helper()
	id := "evt_seal_" + strconv.Itoa(n)
	ev := store.AlertEvent{ID: id, Kind: "budget_day", SubjectType: "key", SubjectID: "seal-" + strconv.Itoa(n), TenantID: "default",
		Period: time.Now().UTC().Format(time.DateOnly), Threshold: 80, Limit: "1", Used: "0.8",
		Payload: []byte(`{"id":"` + id + `","type":"limit.threshold_crossed"}`), CreatedAt: time.Now().UTC()}
	if ok, err := a.store.InsertAlertEvent(context.Background(), ev); err != nil || !ok {
		e.t.Fatalf("insert event %s: %v %v", id, ok, err)
	}
	return id
}

// webhookKeyID reads the key_id GET /admin/alerts/webhooks/{id} shows.
func (e *env) webhookKeyID(a *app, id string) string {
	e.t.Helper()
	var w struct {
		KeyID *string `json:"key_id"`
	}
	raw := e.catalogCall(a, http.MethodGet, "/admin/alerts/webhooks/"+id, "", http.StatusOK, &w)
	if w.KeyID == nil {
		e.t.Fatalf("GET webhook shows no key_id: %s", raw)
	}
	return *w.KeyID
}

// reencryptAnswer is the answer of POST /admin/secrets/reencrypt.
type reencryptAnswer struct {
	KeyID      string   `json:"key_id"`
	Resealed   []string `json:"resealed"`
	Unchanged  int      `json:"unchanged"`
	Unreadable []string `json:"unreadable"`
	Webhooks   *struct {
		Resealed   []string `json:"resealed"`
		Unchanged  int      `json:"unchanged"`
		Unreadable []string `json:"unreadable"`
	} `json:"webhooks"`
}

var (
	testKeyIDA = secrets.KeyID([]byte("0123456789abcdef0123456789abcdef"))
	testKeyIDB = secrets.KeyID([]byte("fedcba9876543210fedcba9876543210"))
)

// sealedByKey checks a stored secret is sealed (by key id want) and holds no plaintext.
func sealedByKey(t *testing.T, row, plain, want string) {
	t.Helper()
	if row == "" || strings.Contains(row, plain) || strings.Contains(row, strings.TrimPrefix(plain, "whsec_")) {
		t.Fatalf("stored webhook secret %q: want it sealed, not the plaintext", row)
	}
	if id, err := secrets.SealedBy(row); err != nil || id != want {
		t.Fatalf("stored webhook secret sealed by %q (%v), want key %s", id, err, want)
	}
}

// TestWebhookSecretSealed, on both stores: a webhook's secret is stored sealed by the current
// key (the row read with SQL holds no plaintext), its key id is shown, and deliveries are still
// signed with the secret the receiver was given. Without a secret key a webhook is refused.
func TestWebhookSecretSealed(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		recv := newSealReceiver(t)
		id, secret := e.createSealedWebhook(e.app, recv)
		sealedByKey(t, e.webhookRow(id), secret, testKeyIDA)
		if got := e.webhookKeyID(e.app, id); got != testKeyIDA {
			t.Errorf("key_id %q, want %s", got, testKeyIDA)
		}
		recv.waitVerified(t, e.emitEvent(e.app, 1), "a delivery signed with the sealed secret")
	}, withSecretKey(testSecretKey), withFastDelivery(true))

	t.Run("no secret key", func(t *testing.T) {
		e := newEnv(t)
		status, raw := e.adminCall(e.app, http.MethodPost, "/admin/alerts/webhooks", `{"name":"ops","url":"http://127.0.0.1:1/hook"}`)
		adminErr(t, "webhook without a secret key", status, raw, http.StatusBadRequest, "secret_key_required", "")
		var list struct {
			Data []any `json:"data"`
		}
		e.adminGet("/admin/alerts/webhooks", &list)
		if len(list.Data) != 0 {
			t.Errorf("a refused webhook was stored: %v", list.Data)
		}
	})
}

// TestWebhookSecretRotation, on PostgreSQL with one delivering replica at a time: a secret
// sealed with key A is opened by a replica whose current key is B with A previous; reencrypt
// moves the row to B; a replica with B alone still signs correctly; and a replica whose keys
// open nothing fails the delivery with a logged reason and an error in the delivery log, never
// the secret, and keeps running.
func TestWebhookSecretRotation(t *testing.T) {
	e := newEnv(t, withPostgres(t), withSecretKey(testSecretKey), withFastDelivery(false))
	recv := newSealReceiver(t)
	id, secret := e.createSealedWebhook(e.app, recv)
	sealedByKey(t, e.webhookRow(id), secret, testKeyIDA)

	mid, stopMid := e.stoppableReplica(nil, withSecretKey(testSecretKey2, testSecretKey), withFastDelivery(true))
	recv.waitVerified(t, e.emitEvent(mid, 1), "a delivery by the replica with B current and A previous")
	var out reencryptAnswer
	e.catalogCall(mid, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
	if out.KeyID != testKeyIDB || out.Webhooks == nil || len(out.Webhooks.Resealed) != 1 || out.Webhooks.Resealed[0] != id ||
		out.Webhooks.Unchanged != 0 || len(out.Webhooks.Unreadable) != 0 || len(out.Resealed) != 0 {
		t.Fatalf("reencrypt answered %+v", out)
	}
	sealedByKey(t, e.webhookRow(id), secret, testKeyIDB)
	e.catalogCall(mid, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
	if out.Webhooks == nil || len(out.Webhooks.Resealed) != 0 || out.Webhooks.Unchanged != 1 {
		t.Errorf("a second reencrypt answered %+v", out)
	}
	stopMid()

	last, stopLast := e.stoppableReplica(nil, withSecretKey(testSecretKey2), withFastDelivery(true))
	recv.waitVerified(t, e.emitEvent(last, 2), "a delivery by the replica with B alone")
	if got := e.webhookKeyID(last, id); got != testKeyIDB {
		t.Errorf("key_id %q, want %s", got, testKeyIDB)
	}
	stopLast()

	// A replica holding only a key that never sealed it.
	var logs testlog.Buffer
	stranger := base64.StdEncoding.EncodeToString([]byte("another-key-of-thirty-two-bytes!"))
	other, _ := e.stoppableReplica(slog.New(slog.NewJSONHandler(&logs, nil)), withSecretKey(stranger), withFastDelivery(true))
	ev := e.emitEvent(other, 3)
	var ds struct {
		Data []deliveryJSON `json:"data"`
	}
	waitFor(t, 20*time.Second, "the failed delivery in the log", func() bool {
		e.catalogCall(other, http.MethodGet, "/admin/alerts/deliveries?event_id="+ev, "", http.StatusOK, &ds)
		return len(ds.Data) == 1 && ds.Data[0].State == store.DeliveryFailed
	})
	for _, a := range ds.Data[0].Attempts {
		if a.StatusCode != 0 || !strings.Contains(a.Error, "does not open") || strings.Contains(a.Error, secret) {
			t.Errorf("attempt %+v: want no request sent and the reason the secret does not open", a)
		}
	}
	if len(logs.Lines(id, "does not open")) == 0 || strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), strings.TrimPrefix(secret, "whsec_")) {
		t.Errorf("the log should name the webhook whose secret does not open, and no secret: %s", logs.String())
	}
	recv.mu.Lock()
	if recv.verified[ev] != 0 || len(recv.bad) != 0 {
		t.Errorf("the receiver was called for the undeliverable event: %v %v", recv.verified, recv.bad)
	}
	recv.mu.Unlock()
	// Still running: its admin API answers.
	e.catalogCall(other, http.MethodGet, "/admin/alerts/webhooks/"+id, "", http.StatusOK, nil)
}

// deliveryJSON is a delivery as GET /admin/alerts/deliveries lists it (the fields the tests read).
type deliveryJSON struct {
	State    string `json:"state"`
	Attempts []struct {
		StatusCode int    `json:"status_code"`
		Error      string `json:"error"`
	} `json:"attempts"`
}

// TestLegacyPlaintextWebhookSecret, on both stores: a secret stored in the clear by a gateway
// before sealing still signs deliveries, is shown with an empty key_id, and reencrypt seals it
// with the current key, after which deliveries are signed with the same secret.
func TestLegacyPlaintextWebhookSecret(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		recv := newSealReceiver(t)
		id, _ := e.createSealedWebhook(e.app, recv)
		legacy := "whsec_" + strings.Repeat("5a", 32)
		e.setWebhookRow(id, legacy)
		recv.secret.Store(legacy)
		if got := e.webhookKeyID(e.app, id); got != "" {
			t.Errorf("key_id %q of a plaintext secret, want \"\"", got)
		}
		recv.waitVerified(t, e.emitEvent(e.app, 1), "a delivery signed with the legacy plaintext secret")

		var out reencryptAnswer
		e.catalogCall(e.app, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
		if out.Webhooks == nil || len(out.Webhooks.Resealed) != 1 || out.Webhooks.Resealed[0] != id {
			t.Fatalf("reencrypt answered %+v", out)
		}
		sealedByKey(t, e.webhookRow(id), legacy, testKeyIDA)
		recv.waitVerified(t, e.emitEvent(e.app, 2), "a delivery signed with the secret sealed by reencrypt")
	}, withSecretKey(testSecretKey), withFastDelivery(true))
}
