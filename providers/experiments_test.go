package providers

import (
	"math"
	"strconv"
	"testing"
)

func abExperiments(t *testing.T) *Experiments {
	t.Helper()
	return NewExperiments([]Experiment{{ID: "ab", Model: "m", Salt: "s1",
		Variants:    []Variant{{Name: "a", Model: "m", Weight: 70}, {Name: "b", Model: "m2", Deployment: "p/x", Weight: 30}},
		ExcludeKeys: []string{"k-out"}, ExcludeTenants: []string{"t-out"}}})
}

// TestAssignSticky: the same user gets the same variant on every call, whatever key it uses;
// without a user the key decides.
func TestAssignSticky(t *testing.T) {
	ex := abExperiments(t)
	for u := range 50 {
		user := "user-" + strconv.Itoa(u)
		first, ok := ex.Assign("m", "t", "k1", user)
		if !ok || first.Experiment != "ab" {
			t.Fatalf("user %s not assigned: %+v", user, first)
		}
		for i := range 1000 {
			got, _ := ex.Assign("m", "t", "k"+strconv.Itoa(i%7), user)
			if got != first {
				t.Fatalf("user %s: call %d got %+v, first %+v", user, i, got, first)
			}
		}
	}
	a, _ := ex.Assign("m", "t", "key-only", "")
	for range 100 {
		if b, _ := ex.Assign("m", "t", "key-only", ""); b != a {
			t.Fatalf("key without user: %+v then %+v", a, b)
		}
	}
}

// TestAssignSplit: over 10,000 users the split is within 2 points of the weights, and a variant
// carries its model and deployment; another salt shuffles the users.
func TestAssignSplit(t *testing.T) {
	ex := abExperiments(t)
	other := NewExperiments([]Experiment{{ID: "ab", Model: "m", Salt: "s2",
		Variants: []Variant{{Name: "a", Model: "m", Weight: 70}, {Name: "b", Model: "m2", Weight: 30}}}})
	const users = 10_000
	n, moved := map[string]int{}, 0
	for u := range users {
		user := "u" + strconv.Itoa(u)
		got, _ := ex.Assign("m", "t", "k", user)
		n[got.Variant]++
		if got.Variant == "b" && (got.Model != "m2" || got.Deployment != "p/x") {
			t.Fatalf("variant b: %+v", got)
		}
		if o, _ := other.Assign("m", "t", "k", user); o.Variant != got.Variant {
			moved++
		}
	}
	if share := float64(n["a"]) / users; math.Abs(share-0.70) > 0.02 {
		t.Errorf("variant a has %.3f of the users, want 0.70 ± 0.02 (%v)", share, n)
	}
	if share := float64(n["b"]) / users; math.Abs(share-0.30) > 0.02 {
		t.Errorf("variant b has %.3f of the users, want 0.30 ± 0.02 (%v)", share, n)
	}
	// Independent assignments agree 0.7²+0.3² = 58 % of the time: 42 % move.
	if moved < users/4 {
		t.Errorf("another salt moved %d users of %d", moved, users)
	}
}

// TestAssignExclusions: excluded keys and tenants, other models and no experiments at all get no
// assignment.
func TestAssignExclusions(t *testing.T) {
	ex := abExperiments(t)
	for _, c := range []struct{ model, tenant, key, user string }{
		{"m", "t", "k-out", "u"}, {"m", "t-out", "k", "u"}, {"m2", "t", "k", "u"}} {
		if got, ok := ex.Assign(c.model, c.tenant, c.key, c.user); ok {
			t.Errorf("%+v assigned %+v", c, got)
		}
	}
	var none *Experiments
	if _, ok := none.Assign("m", "t", "k", "u"); ok {
		t.Error("nil experiments assigned")
	}
}
