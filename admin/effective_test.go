package admin_test

import (
	"testing"

	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/quota"
)

// TestKeyEffectiveLimits: key create and get show, per dimension, the limit the gateway applies
// to the key's requests and where it comes from: the default tier for a key without a user (the
// service-key trap: it counts against "free"), the key's own limits, its user's tier and policy,
// its tenant's policy.
func TestKeyEffectiveLimits(t *testing.T) {
	free := quota.Options{DefaultTier: "free", Tiers: quota.DefaultTiers()}
	c := newServer(t, backend{quota: &free}).client(t)
	const defaultTier = "tier:free (default tier: key has no user)"
	type lim struct {
		dim, value, source string
	}
	check := func(what string, r admintest.Resp, want ...lim) {
		t.Helper()
		for _, w := range want {
			got := r.JSON("effective_limits." + w.dim)
			if got.Get("value").String() != w.value || got.Get("source").String() != w.source {
				t.Errorf("%s: effective_limits.%s = %s, want value %s from %q", what, w.dim, got.Raw, w.value, w.source)
			}
		}
	}

	service := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "billing-service"})
	id := service.JSON("id").String()
	want := []lim{{"rpm", "20", defaultTier}, {"concurrent", "2", defaultTier}, {"tokens_per_day", "100000", defaultTier},
		{"tpm", "0", defaultTier}, {"budget_usd_per_day", "", "none"}}
	check("service key, created", service, want...)
	check("service key, read", c.Must(200, "GET", "/admin/keys/"+id, nil), want...)

	// Its own limits replace the tier's, dimension by dimension; the rest stays the default tier's.
	own := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "with-limits",
		"limits": map[string]any{"rpm": 600, "concurrent": 40, "budget_usd_per_day": "5"}})
	src := "policy:key/" + own.JSON("id").String()
	check("key with limits", own, lim{"rpm", "600", src}, lim{"concurrent", "40", src},
		lim{"tokens_per_day", "100000", defaultTier}, lim{"budget_usd_per_day", "5", src})

	// A user with a tier: the user's tier, then its policy, then its tenant's tighter policy.
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "eff-t", "name": "t"})
	user := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "u", "user_id": "eff-u", "tier": "pro", "tenant_id": "eff-t"})
	uid := user.JSON("id").String()
	check("key of a pro user", user, lim{"rpm", "100", "tier:pro (user eff-u)"}, lim{"concurrent", "10", "tier:pro (user eff-u)"})
	c.Must(200, "PUT", "/admin/quota/policy/eff-u", map[string]any{"userConcurrent": 3})
	c.Must(200, "PUT", "/admin/quota/policies/tenant/eff-t", map[string]any{"rpm": 50})
	check("key of a pro user with policies", c.Must(200, "GET", "/admin/keys/"+uid, nil),
		lim{"rpm", "50", "policy:tenant/eff-t"}, lim{"concurrent", "3", "policy:user/eff-u"},
		lim{"tokens_per_day", "2000000", "tier:pro (user eff-u)"})
}
