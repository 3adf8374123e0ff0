package admin

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing/alerts"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Alerts on limits and budgets: the thresholds (global, or per tenant, user or key), the
// webhooks events go to (their secrets shown once, at creation), the events, and the log of
// their deliveries. Webhooks and thresholds are shared by every tenant: only an unscoped token
// sees or changes them; a scoped token reads its own tenant's events and deliveries.

// AlertControl is the running notifier's side of the alerts endpoints; nil disables them.
type AlertControl interface {
	// CheckURL says why a webhook URL is refused (scheme, host, the outbound address policy).
	CheckURL(raw string) error
	// Defaults are the configured thresholds, used where no stored set applies.
	Defaults() []int
	// ThresholdsChanged has the stored thresholds applied here at once.
	ThresholdsChanged()
}

func (s *Server) routeAlerts(a *gin.RouterGroup) {
	shared := access{area: areaAlerts, global: true} // read, but not by a tenant-scoped token
	s.handle(a, http.MethodGet, "/alerts/thresholds", shared, s.listThresholds)
	s.handle(a, http.MethodPut, "/alerts/thresholds", global(areaAlerts), s.putThresholds)
	s.handle(a, http.MethodDelete, "/alerts/thresholds", global(areaAlerts), s.deleteThresholds)
	s.handle(a, http.MethodPut, "/alerts/thresholds/:subjectType/:subjectId", global(areaAlerts), s.putThresholds)
	s.handle(a, http.MethodDelete, "/alerts/thresholds/:subjectType/:subjectId", global(areaAlerts), s.deleteThresholds)
	s.handle(a, http.MethodPost, "/alerts/webhooks", global(areaAlerts), s.createWebhook)
	s.handle(a, http.MethodGet, "/alerts/webhooks", shared, s.listWebhooks)
	s.handle(a, http.MethodGet, "/alerts/webhooks/:id", shared, s.getWebhook)
	s.handle(a, http.MethodDelete, "/alerts/webhooks/:id", global(areaAlerts), s.deleteWebhook)
	s.handle(a, http.MethodGet, "/alerts/events", read(areaAlerts), s.listAlertEvents)
	s.handle(a, http.MethodGet, "/alerts/deliveries", read(areaAlerts), s.listDeliveries)
}

// thresholdsBody is the body of PUT /admin/alerts/thresholds[/…]: the percents per kind. A kind
// left out inherits; an empty list turns it off for the subject.
type thresholdsBody struct {
	BudgetDay   *[]int `json:"budget_day"`
	BudgetMonth *[]int `json:"budget_month"`
	Credit      *[]int `json:"credit"`
	TokensDay   *[]int `json:"tokens_day"`
}

func (b thresholdsBody) byKind() map[string]*[]int {
	return map[string]*[]int{alerts.KindBudgetDay: b.BudgetDay, alerts.KindBudgetMonth: b.BudgetMonth,
		alerts.KindCredit: b.Credit, alerts.KindTokensDay: b.TokensDay}
}

// thresholdsView is a stored threshold set.
type thresholdsView struct {
	SubjectType string           `json:"subject_type"`
	SubjectID   string           `json:"subject_id"`
	Thresholds  map[string][]int `json:"thresholds"`
	UpdatedAt   time.Time        `json:"updated_at"`
}

func thresholdsViewOf(t store.AlertThresholds) thresholdsView {
	return thresholdsView{SubjectType: t.SubjectType, SubjectID: t.SubjectID, Thresholds: t.Percents, UpdatedAt: t.UpdatedAt.UTC()}
}

// alertSubject reads the subject of a thresholds route: "global" with id "" when the route
// names none.
func alertSubject(c *gin.Context) (typ, id string, ok bool) {
	typ, id = c.Param("subjectType"), c.Param("subjectId")
	if typ == "" {
		return "global", "", true
	}
	switch quota.Kind(typ) {
	case quota.KindTenant, quota.KindUser, quota.KindKey:
	default:
		invalid(c, "subject_type", "want tenant, user or key.")
		return "", "", false
	}
	return typ, id, checkID(c, "subject_id", id)
}

func (s *Server) listThresholds(c *gin.Context) {
	all, err := s.d.Store.AlertThresholds(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	views := make([]thresholdsView, 0, len(all))
	for _, t := range all {
		views = append(views, thresholdsViewOf(t))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "defaults": s.d.Alerts.Defaults(), "data": views})
}

func (s *Server) putThresholds(c *gin.Context) {
	typ, id, ok := alertSubject(c)
	if !ok {
		return
	}
	var b thresholdsBody
	if !decode(c, &b) {
		return
	}
	percents := map[string][]int{}
	for kind, ps := range b.byKind() {
		if ps == nil {
			continue
		}
		if i, err := alerts.CheckPercents(*ps); err != nil {
			invalid(c, kind+"["+strconv.Itoa(i)+"]", err.Error()+".")
			return
		}
		percents[kind] = append([]int{}, *ps...)
	}
	tenant := ""
	if typ != "global" {
		if tenant, _, ok = s.knownSubject(c, quota.Kind(typ), id, "subject_id"); !ok {
			return
		}
	}
	ctx := c.Request.Context()
	before := s.storedThresholds(c, typ, id)
	if c.Writer.Written() {
		return
	}
	t := store.AlertThresholds{SubjectType: typ, SubjectID: id, Percents: percents}
	if err := s.d.Store.PutAlertThresholds(ctx, t); err != nil {
		s.internal(c, err)
		return
	}
	s.d.Alerts.ThresholdsChanged()
	after := s.storedThresholds(c, typ, id)
	if c.Writer.Written() {
		return
	}
	s.audit(c, "alert_thresholds.put", typ+"/"+id, tenant, before, after)
	c.JSON(http.StatusOK, after)
}

// storedThresholds reads one subject's stored set (nil when none), answering 500 itself.
func (s *Server) storedThresholds(c *gin.Context, typ, id string) *thresholdsView {
	all, err := s.d.Store.AlertThresholds(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return nil
	}
	for _, t := range all {
		if t.SubjectType == typ && t.SubjectID == id {
			v := thresholdsViewOf(t)
			return &v
		}
	}
	return nil
}

func (s *Server) deleteThresholds(c *gin.Context) {
	typ, id, ok := alertSubject(c)
	if !ok {
		return
	}
	before := s.storedThresholds(c, typ, id)
	if c.Writer.Written() {
		return
	}
	if err := s.d.Store.DeleteAlertThresholds(c.Request.Context(), typ, id); err != nil {
		if isNotFound(err) {
			notFound(c, "alert thresholds", "subject_id")
			return
		}
		s.internal(c, err)
		return
	}
	s.d.Alerts.ThresholdsChanged()
	tenant := ""
	if typ == string(quota.KindTenant) {
		tenant = id
	}
	s.audit(c, "alert_thresholds.delete", typ+"/"+id, tenant, before, nil)
	c.JSON(http.StatusOK, gin.H{"subject_type": typ, "subject_id": id, "deleted": true})
}

// webhookView is a webhook as the API shows it: never its secret, but at creation.
type webhookView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	Enabled   bool      `json:"enabled"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// KeyID names the secret key that sealed the stored secret; "" for a secret a gateway before
	// sealing stored in the clear, which POST /admin/secrets/reencrypt seals.
	KeyID string `json:"key_id"`
	// Secret signs the deliveries (see docs/operations.md); present only in the answer to create.
	Secret string `json:"secret,omitempty"`
}

func webhookViewOf(w store.AlertWebhook) webhookView {
	keyID, _ := secrets.SealedBy(w.Secret)
	return webhookView{ID: w.ID, Name: w.Name, URL: w.URL, Enabled: w.Enabled, CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt.UTC(),
		KeyID: keyID}
}

// webhookCreate is the body of POST /admin/alerts/webhooks.
type webhookCreate struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Enabled *bool  `json:"enabled"`
}

func (s *Server) createWebhook(c *gin.Context) {
	var b webhookCreate
	if !decode(c, &b) {
		return
	}
	if !checkText(c, "name", b.Name, 200, true) {
		return
	}
	if err := s.d.Alerts.CheckURL(b.URL); err != nil {
		invalid(c, "url", err.Error()+".")
		return
	}
	// The secret is stored sealed, as provider credentials are: without a key there is no
	// webhook, rather than a signing secret in the clear.
	if s.d.Secrets == nil {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "secret_key_required", "",
			"No secret key is configured (secrets.key, secrets.key_file or LLMGATE_SECRET_KEY), and a webhook's signing secret is never stored in the clear.")
		return
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		s.internal(c, err)
		return
	}
	secret := alerts.SecretPrefix + hex.EncodeToString(raw[:])
	w := store.AlertWebhook{ID: "wh_" + strings.ReplaceAll(newID(), "-", ""), Name: b.Name, URL: b.URL,
		Enabled: b.Enabled == nil || *b.Enabled, CreatedBy: who(c).Actor, CreatedAt: now()}
	sealed, err := s.d.Secrets.Seal(secret, alerts.SecretContext(w.ID))
	if err != nil {
		s.internal(c, err)
		return
	}
	w.Secret = sealed
	if err := s.d.Store.CreateAlertWebhook(c.Request.Context(), w); err != nil {
		s.internal(c, err)
		return
	}
	v := webhookViewOf(w)
	s.audit(c, "alert_webhook.create", w.ID, "", nil, v)
	v.Secret = secret
	c.JSON(http.StatusCreated, v)
}

func (s *Server) listWebhooks(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	ws, err := s.d.Store.ListAlertWebhooks(c.Request.Context(), store.AlertWebhookFilter{Limit: limit + 1, Offset: offset})
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, ws, limit, offset, webhookViewOf)
}

func (s *Server) getWebhook(c *gin.Context) {
	w, err := s.d.Store.GetAlertWebhook(c.Request.Context(), c.Param("id"))
	if isNotFound(err) {
		notFound(c, "webhook", "id")
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, webhookViewOf(w))
}

func (s *Server) deleteWebhook(c *gin.Context) {
	ctx := c.Request.Context()
	w, err := s.d.Store.GetAlertWebhook(ctx, c.Param("id"))
	if err == nil {
		err = s.d.Store.DeleteAlertWebhook(ctx, w.ID)
	}
	if isNotFound(err) {
		notFound(c, "webhook", "id")
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	v := webhookViewOf(w)
	s.audit(c, "alert_webhook.delete", w.ID, "", v, nil)
	c.JSON(http.StatusOK, gin.H{"id": w.ID, "deleted": true})
}

// resealed is what POST /admin/secrets/reencrypt did to the webhooks' secrets: the ids of those
// sealed again with the current key (those sealed by a previous key, and those stored in the
// clear by a gateway before sealing), how many were sealed by the current key already, and the
// ids of those no configured key opens (left as they are).
type resealed struct {
	Resealed   []string `json:"resealed"`
	Unchanged  int      `json:"unchanged"`
	Unreadable []string `json:"unreadable"`
}

// resealWebhooks seals every webhook's secret with the current key; false when it answered an
// error itself.
func (s *Server) resealWebhooks(c *gin.Context) (resealed, bool) {
	ctx := c.Request.Context()
	keys := s.d.Secrets
	out := resealed{Resealed: []string{}, Unreadable: []string{}}
	const pageSize = 100
	var all []store.AlertWebhook
	for offset := 0; ; offset += pageSize {
		page, err := s.d.Store.ListAlertWebhooks(ctx, store.AlertWebhookFilter{Limit: pageSize, Offset: offset})
		if err != nil {
			s.internal(c, err)
			return out, false
		}
		all = append(all, page...)
		if len(page) < pageSize {
			break
		}
	}
	for _, w := range all {
		if id, err := secrets.SealedBy(w.Secret); err == nil && id == keys.CurrentKeyID() {
			out.Unchanged++
			continue
		}
		plain, _, err := alerts.OpenSecret(keys, w.ID, w.Secret)
		if err != nil {
			s.d.Log.Error("stored webhook secret does not open", "webhook_id", w.ID, "err", err)
			out.Unreadable = append(out.Unreadable, w.ID)
			continue
		}
		sealed, err := keys.Seal(plain, alerts.SecretContext(w.ID))
		if err != nil {
			s.internal(c, err)
			return out, false
		}
		if err := s.d.Store.SetAlertWebhookSecret(ctx, w.ID, sealed); err != nil {
			if isNotFound(err) { // deleted meanwhile
				continue
			}
			s.internal(c, err)
			return out, false
		}
		out.Resealed = append(out.Resealed, w.ID)
	}
	return out, true
}

// eventView is an event as its deliveries send it (alerts.Payload).
type eventView = alerts.Payload

func eventViewOf(e store.AlertEvent) eventView {
	var p alerts.Payload
	if json.Unmarshal(e.Payload, &p) != nil || p.ID == "" { // keep the row's own fields at least
		p = alerts.Payload{ID: e.ID, Type: "limit.threshold_crossed", Kind: e.Kind, Threshold: e.Threshold, SubjectType: e.SubjectType,
			SubjectID: e.SubjectID, TenantID: e.TenantID, Period: e.Period, Limit: e.Limit, Used: e.Used, CreatedAt: e.CreatedAt}
	}
	return p
}

func (s *Server) listAlertEvents(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.AlertEventFilter{Kind: c.Query("kind"), SubjectType: c.Query("subject_type"), SubjectID: c.Query("subject_id"),
		Limit: limit + 1, Offset: offset}
	if f.Kind != "" && !alerts.ValidKind(f.Kind) {
		invalid(c, "kind", "want one of "+strings.Join(alerts.Kinds, ", ")+".")
		return
	}
	if f.SubjectType != "" && !slices.Contains([]string{"tenant", "user", "key"}, f.SubjectType) {
		invalid(c, "subject_type", "want tenant, user or key.")
		return
	}
	if f.Threshold, ok = intParam(c, "threshold", 0, 1, alerts.MaxPercent); !ok {
		return
	}
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return
	}
	if f.From, ok = timeParam(c, "from"); !ok {
		return
	}
	if f.To, ok = timeParam(c, "to"); !ok {
		return
	}
	if !checkText(c, "subject_id", f.SubjectID, 200, false) || !checkText(c, "tenant_id", f.TenantID, 200, false) {
		return
	}
	evs, err := s.d.Store.ListAlertEvents(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, evs, limit, offset, eventViewOf)
}

// deliveryView is a delivery with its attempts, oldest first.
type deliveryView struct {
	ID            string        `json:"id"`
	EventID       string        `json:"event_id"`
	WebhookID     string        `json:"webhook_id"`
	State         string        `json:"state"`
	AttemptCount  int           `json:"attempt_count"`
	NextAttemptAt *time.Time    `json:"next_attempt_at"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
	Attempts      []attemptView `json:"attempts"`
}

type attemptView struct {
	Attempt    int    `json:"attempt"`
	StatusCode int    `json:"status_code"` // 0: no answer
	Error      string `json:"error"`
	DurationMS int64  `json:"duration_ms"`
	// NextRetryAt is the retry the attempt planned; null when it delivered or was the last.
	NextRetryAt *time.Time `json:"next_retry_at"`
	At          time.Time  `json:"at"`
}

func deliveryViewOf(d store.AlertDelivery) deliveryView {
	v := deliveryView{ID: d.ID, EventID: d.EventID, WebhookID: d.WebhookID, State: d.State, AttemptCount: d.Attempts,
		NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Attempts: []attemptView{}}
	for _, a := range d.Log {
		v.Attempts = append(v.Attempts, attemptView{Attempt: a.Attempt, StatusCode: a.StatusCode, Error: a.Error,
			DurationMS: a.DurationMS, NextRetryAt: a.NextAttemptAt, At: a.At})
	}
	return v
}

func (s *Server) listDeliveries(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.AlertDeliveryFilter{EventID: c.Query("event_id"), WebhookID: c.Query("webhook_id"), State: c.Query("state"),
		Limit: limit + 1, Offset: offset}
	if f.State != "" && !slices.Contains([]string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed}, f.State) {
		invalid(c, "state", "want pending, delivered or failed.")
		return
	}
	if f.TenantID, ok = scopedTenant(c, "", "tenant_id"); !ok {
		return
	}
	if !checkText(c, "event_id", f.EventID, 200, false) || !checkText(c, "webhook_id", f.WebhookID, 200, false) {
		return
	}
	ds, err := s.d.Store.ListAlertDeliveries(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, ds, limit, offset, deliveryViewOf)
}
