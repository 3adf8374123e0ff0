package storetest

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// testExperiments: experiments round-trip (the spec as the same JSON value), list by id, conflict
// on a second create, update state and spec only, and refuse what is not one.
func testExperiments(t *testing.T, s store.Store) {
	c := ctx(t)
	if got, err := s.Experiments(c); err != nil || len(got) != 0 {
		t.Fatalf("Experiments() on an empty store = %+v, %v", got, err)
	}
	at := mins(0)
	exps := []store.Experiment{
		{ID: "zeta", Model: "gpt-x", State: store.ExperimentDraft, Salt: "s1", Spec: []byte(`{"variants":[{"name":"a","weight":1}]}`),
			CreatedAt: at, UpdatedBy: "bootstrap", UpdatedAt: at},
		{ID: "Alpha'; --", Model: "a/b", State: store.ExperimentRunning, Salt: "s2", Spec: []byte(`{}`), CreatedAt: at, UpdatedAt: at},
	}
	for _, e := range exps {
		if err := s.CreateExperiment(c, e); err != nil {
			t.Fatalf("CreateExperiment(%s): %v", e.ID, err)
		}
	}
	if err := s.CreateExperiment(c, exps[0]); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateExperiment: err = %v, want ErrConflict", err)
	}
	for _, bad := range []store.Experiment{{Model: "m", State: store.ExperimentDraft, Spec: []byte(`{}`)},
		{ID: "y", Model: "m", State: "finished", Spec: []byte(`{}`)}, {ID: "y", Model: "m", State: store.ExperimentDraft, Spec: []byte(`[1]`)},
		{ID: "y", State: store.ExperimentDraft, Spec: []byte(`{}`)}} {
		if err := s.CreateExperiment(c, bad); err == nil {
			t.Errorf("CreateExperiment(%+v): no error", bad)
		}
	}
	got, err := s.Experiments(c)
	if err != nil {
		t.Fatal(err)
	}
	assertExperiments(t, got, []store.Experiment{exps[1], exps[0]})

	upd := exps[0]
	upd.State, upd.Spec, upd.UpdatedBy, upd.UpdatedAt = store.ExperimentPaused, []byte(`{"variants":[]}`), "tok2", mins(5)
	upd.CreatedAt, upd.Model, upd.Salt = mins(9), "other", "other" // not written: they stay
	if err := s.UpdateExperiment(c, upd); err != nil {
		t.Fatalf("UpdateExperiment: %v", err)
	}
	upd.CreatedAt, upd.Model, upd.Salt = at, exps[0].Model, exps[0].Salt
	got, _ = s.Experiments(c)
	assertExperiments(t, got, []store.Experiment{exps[1], upd})
	if err := s.UpdateExperiment(c, store.Experiment{ID: "ghost", Model: "m", State: store.ExperimentDraft, Spec: []byte(`{}`)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateExperiment(unknown): err = %v, want ErrNotFound", err)
	}
}

func assertExperiments(t *testing.T, got, want []store.Experiment) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("experiments = %+v, want %+v", got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !jsonEqual(t, g.Spec, w.Spec) || !g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) {
			t.Errorf("experiment %d = %+v (spec %s), want %+v (spec %s)", i, g, g.Spec, w, w.Spec)
		}
		g.Spec, w.Spec, g.CreatedAt, w.CreatedAt, g.UpdatedAt, w.UpdatedAt = nil, nil, time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("experiment %d = %+v, want %+v", i, g, w)
		}
	}
}

// testExperimentResults: the per-variant figures are those of the records of the experiment
// (others' and unassigned ones left out): counts, errors, nearest-rank p50/p95 of latency over
// the successful requests and of TTFT over those that have one, token sums, and cost summed over
// the priced records, with each figure's sample size.
func testExperimentResults(t *testing.T, s store.Store) {
	c := ctx(t)
	var recs []store.UsageRecord
	add := func(exp, variant string, status int, latency, ttft int64, cost *int64) {
		r := usageRec(len(recs))
		r.Experiment, r.Variant, r.Status, r.LatencyMS, r.TTFTMS, r.CostPicoUSD = exp, variant, status, latency, ttft, cost
		r.Deployment = "p/m"
		r.PromptTokens, r.CompletionTokens = 10, int64(len(recs))
		recs = append(recs, r)
	}
	// Variant a: latencies 1..20 ms (successes), TTFT on even ones, two errors, priced at 5.
	for i := 1; i <= 20; i++ {
		ttft := int64(0)
		if i%2 == 0 {
			ttft = int64(i) * 100
		}
		add("e1", "a", 200, int64(i), ttft, ptr(int64(5)))
	}
	add("e1", "a", 502, 9999, 0, nil)
	add("e1", "a", 429, 1, 0, nil)
	// Variant b: three successes, unpriced.
	for _, l := range []int64{30, 10, 20} {
		add("e1", "b", 200, l, 0, nil)
	}
	add("e2", "a", 200, 5, 5, ptr(int64(1)))
	add("", "", 200, 5, 5, ptr(int64(1)))
	insert(t, s, recs, len(recs))

	got, err := s.ExperimentResults(c, "e1")
	if err != nil {
		t.Fatal(err)
	}
	sumCompletion := func(variant string) (n int64) {
		for _, r := range recs {
			if r.Experiment == "e1" && r.Variant == variant {
				n += r.CompletionTokens
			}
		}
		return n
	}
	want := []store.VariantResult{
		{Variant: "a", Requests: 22, Errors: 2, LatencySamples: 20, LatencyP50MS: 10, LatencyP95MS: 19,
			TTFTSamples: 10, TTFTP50MS: 1000, TTFTP95MS: 2000, PromptTokens: 220, CompletionTokens: sumCompletion("a"),
			CostSamples: 20, CostPicoUSD: big.NewInt(100)},
		{Variant: "b", Requests: 3, LatencySamples: 3, LatencyP50MS: 20, LatencyP95MS: 30, PromptTokens: 30,
			CompletionTokens: sumCompletion("b"), CostPicoUSD: big.NewInt(0)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ExperimentResults(e1):\n got %+v\nwant %+v", got, want)
	}
	if got, err := s.ExperimentResults(c, "none"); err != nil || len(got) != 0 {
		t.Errorf("ExperimentResults(none) = %+v, %v", got, err)
	}
}
