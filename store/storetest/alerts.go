package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

func testAlertThresholds(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.PutAlertThresholds(c, store.AlertThresholds{SubjectType: "global", Percents: map[string][]int{"budget_day": {80, 100}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertThresholds(c, store.AlertThresholds{SubjectType: "user", SubjectID: "u1", Percents: map[string][]int{"credit": {}}}); err != nil {
		t.Fatal(err)
	}
	// A put replaces the whole set.
	if err := s.PutAlertThresholds(c, store.AlertThresholds{SubjectType: "global", Percents: map[string][]int{"tokens_day": {50}}}); err != nil {
		t.Fatal(err)
	}
	all, err := s.AlertThresholds(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].SubjectType != "global" || !reflect.DeepEqual(all[0].Percents, map[string][]int{"tokens_day": {50}}) ||
		all[1].SubjectID != "u1" || all[1].Percents["credit"] == nil || len(all[1].Percents["credit"]) != 0 || all[1].UpdatedAt.IsZero() {
		t.Errorf("thresholds: %+v", all)
	}
	if err := s.DeleteAlertThresholds(c, "user", "u1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAlertThresholds(c, "user", "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

func testAlertWebhooks(t *testing.T, s store.Store) {
	c := ctx(t)
	for i, id := range []string{"wh_a", "wh_b"} {
		w := store.AlertWebhook{ID: id, Name: "hook " + id, URL: "http://127.0.0.1:1/" + id, Secret: "whsec_" + id,
			Enabled: true, CreatedBy: "bootstrap", CreatedAt: mins(i)}
		if err := s.CreateAlertWebhook(c, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAlertWebhook(c, store.AlertWebhook{ID: "wh_a", Name: "x", URL: "http://127.0.0.1:1/", Secret: "s", CreatedAt: mins(5)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate id: %v, want ErrConflict", err)
	}
	w, err := s.GetAlertWebhook(c, "wh_a")
	if err != nil || w.Secret != "whsec_wh_a" || w.URL != "http://127.0.0.1:1/wh_a" || !w.Enabled || !w.CreatedAt.Equal(mins(0)) {
		t.Errorf("get: %+v, %v", w, err)
	}
	list, err := s.ListAlertWebhooks(c, store.AlertWebhookFilter{Limit: 1, Offset: 0})
	if err != nil || len(list) != 1 || list[0].ID != "wh_b" {
		t.Errorf("list newest first, limit 1: %+v, %v", list, err)
	}
	// A secret sealed again replaces the stored one and changes nothing else.
	if err := s.SetAlertWebhookSecret(c, "wh_a", "v1:key2:resealed"); err != nil {
		t.Fatal(err)
	}
	if w2, err := s.GetAlertWebhook(c, "wh_a"); err != nil || w2.Secret != "v1:key2:resealed" || w2.URL != w.URL || w2.Name != w.Name || !w2.Enabled {
		t.Errorf("after SetAlertWebhookSecret: %+v, %v", w2, err)
	}
	if err := s.SetAlertWebhookSecret(c, "wh_none", "v1:key2:x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("set the secret of no webhook: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAlertWebhook(c, "wh_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAlertWebhook(c, "wh_a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if err := s.DeleteAlertWebhook(c, "wh_a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete deleted: %v", err)
	}
}

func alertEvent(id string, threshold int, at time.Time) store.AlertEvent {
	return store.AlertEvent{ID: id, Kind: "budget_day", SubjectType: "key", SubjectID: "k1", TenantID: "t1", Period: "2026-01-15",
		Threshold: threshold, Limit: "1", Used: "0.8", Payload: []byte(`{"id":"` + id + `"}`), CreatedAt: at}
}

// testAlertEvents: a crossing is stored once however many writers race for it, with a delivery to
// each enabled webhook and none to a disabled one.
func testAlertEvents(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, w := range []store.AlertWebhook{
		{ID: "wh_on", Name: "on", URL: "http://127.0.0.1:1/on", Secret: "s1", Enabled: true, CreatedAt: mins(0)},
		{ID: "wh_off", Name: "off", URL: "http://127.0.0.1:1/off", Secret: "s2", Enabled: false, CreatedAt: mins(0)},
	} {
		if err := s.CreateAlertWebhook(c, w); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	won := make([]bool, 8)
	errs := make([]error, 8)
	for i := range won {
		wg.Go(func() { won[i], errs[i] = s.InsertAlertEvent(c, alertEvent(fmt.Sprintf("ev_%d", i), 80, mins(1))) })
	}
	wg.Wait()
	winners := 0
	for i := range won {
		if errs[i] != nil {
			t.Fatalf("insert %d: %v", i, errs[i])
		}
		if won[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d inserts of one crossing were new, want 1", winners)
	}
	if ok, err := s.InsertAlertEvent(c, alertEvent("ev_90", 90, mins(2))); !ok || err != nil {
		t.Fatalf("another threshold: %v %v", ok, err)
	}
	other := alertEvent("ev_other", 80, mins(3))
	other.Period = "2026-01-16" // the next day: a crossing of its own
	if ok, err := s.InsertAlertEvent(c, other); !ok || err != nil {
		t.Fatalf("another period: %v %v", ok, err)
	}
	evs, err := s.ListAlertEvents(c, store.AlertEventFilter{SubjectID: "k1"})
	if err != nil || len(evs) != 3 || evs[0].ID != "ev_other" || string(evs[0].Payload) != `{"id":"ev_other"}` || evs[0].Used != "0.8" {
		t.Fatalf("events newest first: %+v, %v", evs, err)
	}
	for _, f := range []store.AlertEventFilter{{Threshold: 90}, {Kind: "budget_day", TenantID: "t1", From: mins(2), To: mins(3)}} {
		if evs, err := s.ListAlertEvents(c, f); err != nil || len(evs) != 1 || evs[0].ID != "ev_90" {
			t.Errorf("filter %+v: %+v, %v", f, evs, err)
		}
	}
	ds, err := s.ListAlertDeliveries(c, store.AlertDeliveryFilter{})
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries: %+v, %v (want one per event, to the enabled webhook only)", ds, err)
	}
	for _, d := range ds {
		if d.WebhookID != "wh_on" || d.State != store.DeliveryPending || d.Attempts != 0 || d.NextAttemptAt == nil || len(d.Log) != 0 {
			t.Errorf("new delivery: %+v", d)
		}
	}
}

// testAlertDeliveries: a due delivery is claimed by one caller at a time until its lease ends;
// attempts are logged in order and move it to pending (with its retry), delivered or failed; a
// deleted webhook takes its deliveries with it.
func testAlertDeliveries(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateAlertWebhook(c, store.AlertWebhook{ID: "wh", Name: "n", URL: "http://127.0.0.1:1/x", Secret: "whsec_x", Enabled: true, CreatedAt: mins(0)}); err != nil {
		t.Fatal(err)
	}
	for i, th := range []int{80, 90} {
		if _, err := s.InsertAlertEvent(c, alertEvent(fmt.Sprintf("ev_%d", th), th, mins(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	now := mins(10)
	var wg sync.WaitGroup
	jobs := make([]store.AlertJob, 6)
	oks := make([]bool, 6)
	for i := range jobs {
		wg.Go(func() {
			var err error
			if jobs[i], oks[i], err = s.ClaimAlertDelivery(c, now, time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	claimed := map[string]store.AlertJob{}
	for i, ok := range oks {
		if ok {
			if _, twice := claimed[jobs[i].DeliveryID]; twice {
				t.Errorf("delivery %s claimed twice", jobs[i].DeliveryID)
			}
			claimed[jobs[i].DeliveryID] = jobs[i]
		}
	}
	if len(claimed) != 2 {
		t.Fatalf("%d deliveries claimed, want both, once each", len(claimed))
	}
	first := claimed["ev_80:wh"]
	if first.Attempt != 1 || first.EventID != "ev_80" || first.URL != "http://127.0.0.1:1/x" || first.Secret != "whsec_x" || first.WebhookID != "wh" ||
		string(first.Payload) != `{"id":"ev_80"}` || first.Kind != "budget_day" {
		t.Errorf("job: %+v", first)
	}
	if _, ok, _ := s.ClaimAlertDelivery(c, now.Add(30*time.Second), time.Minute); ok {
		t.Errorf("a leased delivery was claimed again")
	}
	// ev_80 fails and is retried; ev_90 fails for good.
	retry := now.Add(2 * time.Second)
	if err := s.RecordAlertAttempt(c, store.AlertAttempt{DeliveryID: "ev_80:wh", Attempt: 1, StatusCode: 500, Error: "webhook answered 500",
		DurationMS: 3, NextAttemptAt: &retry, At: now}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAlertAttempt(c, store.AlertAttempt{DeliveryID: "ev_90:wh", Attempt: 1, Error: "connection failed", At: now}, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ClaimAlertDelivery(c, now.Add(time.Second), time.Minute); ok {
		t.Errorf("a delivery was claimed before its retry was due")
	}
	j, ok, err := s.ClaimAlertDelivery(c, retry, time.Minute)
	if err != nil || !ok || j.DeliveryID != "ev_80:wh" || j.Attempt != 2 {
		t.Fatalf("retry claim: %+v %v %v", j, ok, err)
	}
	if err := s.RecordAlertAttempt(c, store.AlertAttempt{DeliveryID: "ev_80:wh", Attempt: 2, StatusCode: 204, At: retry}, true); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ListAlertDeliveries(c, store.AlertDeliveryFilter{WebhookID: "wh"})
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries: %+v %v", ds, err)
	}
	byID := map[string]store.AlertDelivery{ds[0].ID: ds[0], ds[1].ID: ds[1]}
	d := byID["ev_80:wh"]
	if d.State != store.DeliveryDelivered || d.Attempts != 2 || d.NextAttemptAt != nil || len(d.Log) != 2 ||
		d.Log[0].StatusCode != 500 || d.Log[0].NextAttemptAt == nil || !d.Log[0].NextAttemptAt.Equal(retry) || d.Log[0].DurationMS != 3 ||
		d.Log[1].StatusCode != 204 || d.Log[1].NextAttemptAt != nil {
		t.Errorf("retried delivery: %+v", d)
	}
	if d := byID["ev_90:wh"]; d.State != store.DeliveryFailed || len(d.Log) != 1 || d.Log[0].Error != "connection failed" {
		t.Errorf("failed delivery: %+v", d)
	}
	if got, _ := s.ListAlertDeliveries(c, store.AlertDeliveryFilter{State: store.DeliveryFailed, TenantID: "t1"}); len(got) != 1 {
		t.Errorf("state and tenant filter: %+v", got)
	}
	if err := s.DeleteAlertWebhook(c, "wh"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListAlertDeliveries(c, store.AlertDeliveryFilter{}); len(got) != 0 {
		t.Errorf("deliveries of a deleted webhook: %+v", got)
	}
}
