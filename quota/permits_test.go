package quota

import (
	"math"
	"testing"
)

// TestShapeKey: a shape names each subject by its key and its four limits, one line a subject,
// escaped as the subject's keys are; a request of another subject or other limits is another
// shape. It is made for every request a lease may serve, in one allocation.
func TestShapeKey(t *testing.T) {
	subjects := []Subject{
		{Kind: KindUser, ID: "u:1", Tenant: "t{1}", Limits: Limits{RPM: 60, TPM: 1000, TokensPerDay: 0, Concurrent: 4}},
		{Kind: KindKey, ID: "key-7", Tenant: "t{1}", Model: "gpt@4", Limits: Limits{RPM: -1}},
		{Kind: KindTenant, ID: "t{1}", Tenant: "t{1}", Limits: Limits{RPM: 100_000_000, TPM: 100_000_000_000,
			TokensPerDay: 100_000_000_000_000, Concurrent: math.MaxInt64}},
	}
	want := "{t:t%7B1%7D}:q:user:u%3A1 60 1000 0 4\n{t:t%7B1%7D}:q:key:key-7@gpt%404 -1 0 0 0\n" +
		"{t:t%7B1%7D}:q:tenant:t%7B1%7D 100000000 100000000000 100000000000000 9223372036854775807\n"
	if got := shapeKey(subjects); got != want {
		t.Errorf("shapeKey = %q, want %q", got, want)
	}
	for i, s := range subjects {
		if got := shapeKey(subjects[i : i+1]); got[:len(subjectKey(s))] != subjectKey(s) {
			t.Errorf("shapeKey of subject %d = %q, does not begin with its key %q", i, got, subjectKey(s))
		}
	}
	other := append([]Subject(nil), subjects...)
	other[1].Limits.RPM = 61
	if shapeKey(other) == shapeKey(subjects) {
		t.Error("other limits, same shape")
	}
	for _, ss := range [][]Subject{subjects, subjects[2:]} {
		if n := testing.AllocsPerRun(100, func() { _ = shapeKey(ss) }); n != 1 {
			t.Errorf("shapeKey of %d subjects: %v allocations, want 1", len(ss), n)
		}
	}
}
