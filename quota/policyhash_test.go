package quota

import (
	"testing"

	"github.com/llmgate/llmgate/store"
)

// TestHashLimits: a policy hash's four limits are read as the other system writes them (-1 is
// unlimited, an absent field inherits, other fields are ignored); a value that is not an integer
// is an error naming the field, so the hash is not applied half-read.
func TestHashLimits(t *testing.T) {
	p, err := hashLimits(map[string]string{"userRpm": "5", "userTokensPerDay": "-1", "userConcurrent": " 3 ", "updatedBy": "x"})
	if err != nil || p.RPM == nil || *p.RPM != 5 || p.TokensPerDay == nil || *p.TokensPerDay != 0 ||
		p.Concurrent == nil || *p.Concurrent != 3 || p.TPM != nil {
		t.Errorf("hashLimits = %+v, %v", p, err)
	}
	for _, bad := range []map[string]string{{"userRpm": "five"}, {"userTpm": "1.5"}, {"userConcurrent": ""}} {
		if _, err := hashLimits(bad); err == nil {
			t.Errorf("hashLimits(%v): no error", bad)
		}
	}
	if hasLimits(p) != true {
		t.Error("hasLimits of a policy with limits: false")
	}
	empty, _ := hashLimits(map[string]string{"note": "only another field"})
	if hasLimits(empty) || !sameLimits(empty, store.QuotaPolicy{BudgetDayMicroUSD: p.BudgetDayMicroUSD}) {
		t.Errorf("a hash without limit fields: %+v", empty)
	}
}
