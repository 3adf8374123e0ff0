package main

import (
	"testing"
)

// The rows of TestEveryAdminRouteOnBothStores for the alerts endpoints: thresholds set globally
// and for the run's user, a webhook made, read and deleted, and the event and delivery logs
// listed. Crossings themselves are TestBudgetAlertsReachWebhook's.

func alertRouteSteps() []routeStep {
	return []routeStep{
		{adminRoute("PUT /admin/alerts/thresholds"), (*routeRun).putGlobalThresholds},
		{adminRoute("PUT /admin/alerts/thresholds/:subjectType/:subjectId"), (*routeRun).putUserThresholds},
		{adminRoute("GET /admin/alerts/thresholds"), (*routeRun).listThresholds},
		{adminRoute("POST /admin/alerts/webhooks"), (*routeRun).createWebhook},
		{adminRoute("GET /admin/alerts/webhooks"), (*routeRun).listWebhooks},
		{adminRoute("GET /admin/alerts/webhooks/:id"), (*routeRun).getWebhook},
		{adminRoute("GET /admin/alerts/events"), (*routeRun).listAlertEvents},
		{adminRoute("GET /admin/alerts/deliveries"), (*routeRun).listAlertDeliveries},
		{adminRoute("DELETE /admin/alerts/webhooks/:id"), (*routeRun).deleteWebhook},
		{adminRoute("DELETE /admin/alerts/thresholds/:subjectType/:subjectId"), (*routeRun).deleteUserThresholds},
		{adminRoute("DELETE /admin/alerts/thresholds"), (*routeRun).deleteGlobalThresholds},
	}
}

func (s *routeRun) putGlobalThresholds(t *testing.T) {
	r := s.admin(t).Must(200, "PUT", "/admin/alerts/thresholds", map[string]any{"budget_day": []int{50, 100}})
	if r.JSON("subject_type").String() != "global" || r.JSON("thresholds.budget_day.0").Int() != 50 {
		t.Errorf("global thresholds: %s", r.Body)
	}
}

func (s *routeRun) putUserThresholds(t *testing.T) {
	r := s.admin(t).Must(200, "PUT", "/admin/alerts/thresholds/user/"+s.user, map[string]any{"credit": []int{75}, "tokens_day": []int{}})
	if r.JSON("subject_id").String() != s.user || r.JSON("thresholds.credit.0").Int() != 75 || !r.JSON("thresholds.tokens_day").IsArray() {
		t.Errorf("user thresholds: %s", r.Body)
	}
}

func (s *routeRun) listThresholds(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/alerts/thresholds", nil)
	if r.JSON("defaults.#").Int() != 3 || r.JSON(`data.#(subject_id=="`+s.user+`").thresholds.credit.0`).Int() != 75 {
		t.Errorf("thresholds: %s", r.Body)
	}
}

func (s *routeRun) createWebhook(t *testing.T) {
	// Loopback (the test's outbound allow list), a port nothing listens on: the run emits no
	// event, so nothing is sent.
	r := s.admin(t).Must(201, "POST", "/admin/alerts/webhooks", map[string]any{"name": "route check", "url": "http://127.0.0.1:1/hook"})
	if len(r.JSON("secret").String()) < 40 || !r.JSON("enabled").Bool() {
		t.Errorf("created webhook: %s", r.Body)
	}
}

// webhookID is the id of the run's webhook, the newest.
func (s *routeRun) webhookID(t *testing.T) string {
	return s.admin(t).Must(200, "GET", "/admin/alerts/webhooks?limit=1", nil).JSON("data.0.id").String()
}

func (s *routeRun) listWebhooks(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/alerts/webhooks", nil)
	if r.JSON(`data.#(name=="route check").url`).String() != "http://127.0.0.1:1/hook" || r.JSON("data.0.secret").Exists() {
		t.Errorf("webhooks: %s", r.Body)
	}
}

func (s *routeRun) getWebhook(t *testing.T) {
	id := s.webhookID(t)
	r := s.admin(t).Must(200, "GET", "/admin/alerts/webhooks/"+id, nil)
	if r.JSON("id").String() != id || r.JSON("created_by").String() != "bootstrap" || r.JSON("secret").Exists() {
		t.Errorf("webhook: %s", r.Body)
	}
}

func (s *routeRun) listAlertEvents(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/alerts/events?subject_type=user&subject_id="+s.user, nil)
	if r.JSON("object").String() != "list" || r.JSON("data.#").Int() != 0 {
		t.Errorf("events: %s", r.Body)
	}
}

func (s *routeRun) listAlertDeliveries(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/alerts/deliveries?state=pending&webhook_id="+s.webhookID(t), nil)
	if r.JSON("object").String() != "list" || r.JSON("has_more").Bool() {
		t.Errorf("deliveries: %s", r.Body)
	}
}

func (s *routeRun) deleteWebhook(t *testing.T) {
	id := s.webhookID(t)
	if r := s.admin(t).Must(200, "DELETE", "/admin/alerts/webhooks/"+id, nil); !r.JSON("deleted").Bool() {
		t.Errorf("deleted webhook: %s", r.Body)
	}
	s.admin(t).Must(404, "GET", "/admin/alerts/webhooks/"+id, nil)
}

func (s *routeRun) deleteUserThresholds(t *testing.T) {
	if r := s.admin(t).Must(200, "DELETE", "/admin/alerts/thresholds/user/"+s.user, nil); !r.JSON("deleted").Bool() {
		t.Errorf("deleted thresholds: %s", r.Body)
	}
}

func (s *routeRun) deleteGlobalThresholds(t *testing.T) {
	s.admin(t).Must(200, "DELETE", "/admin/alerts/thresholds", nil)
	if r := s.admin(t).Must(200, "GET", "/admin/alerts/thresholds", nil); r.JSON("data.#").Int() != 0 {
		t.Errorf("thresholds left: %s", r.Body)
	}
}
