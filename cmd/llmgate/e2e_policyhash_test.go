package main

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// TestPolicyHashWrittenByAnotherSystem: another system (the governance service of the original
// design) writes a user's limits straight into the Redis hash ai:quota:policy:{userId} with HSET.
// Every replica applies them within a few seconds, and they are stored as an API write would
// store them (the user's budget, which the hash does not carry, kept); -1 means unlimited, as
// that system writes it; fields other than the limits are ignored. On one Redis and on a Redis
// Cluster.
func TestPolicyHashWrittenByAnotherSystem(t *testing.T) {
	for name, url := range redisBackends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPostgres(t), withRedisURL(url))
			other := e.replica(nil)
			k := e.newKey(createKeyBody{Name: "hash", UserID: "hash-user"})
			e.putPolicy("/admin/quota/policies/user/hash-user", `{"rpm":100,"concurrent":4,"budget_usd_per_day":"5"}`)
			waitPolicy(t, quota.KindUser, "hash-user", e.app, other)

			c, err := quota.NewRedisClient(url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			written := time.Now()
			if err := c.HSet(context.Background(), quota.PolicyHashPrefix+"hash-user",
				"userRpm", "1", "userTokensPerDay", "-1", "updatedBy", "governance").Err(); err != nil {
				t.Fatal(err)
			}
			applied := func(a *app) bool {
				p, ok := a.quota.policies.Lookup(quota.KindUser, "hash-user", "")
				return ok && eq(p.RPM, 1) && eq(p.TokensPerDay, 0) && eq(p.Concurrent, 4)
			}
			waitFor(t, 8*time.Second, "both replicas to apply the hash", func() bool { return applied(e.app) && applied(other) })
			t.Logf("applied on both replicas %v after the HSET", time.Since(written))

			ps, err := e.app.store.QuotaPolicies(context.Background(), "user", "hash-user")
			if err != nil || len(ps) != 1 || !eq(ps[0].RPM, 1) || !eq(ps[0].Concurrent, 4) || !eq(ps[0].TokensPerDay, 0) ||
				ps[0].TPM != nil || !eq(ps[0].BudgetDayMicroUSD, 5_000_000) {
				t.Fatalf("stored policies %s, %v; want rpm 1, concurrent 4, tokens per day 0 (unlimited), the budget kept", fmtPolicies(ps), err)
			}
			if s := e.chatStatus(other, k.Key, "gpt-test"); s != 200 {
				t.Fatalf("first request: %d", s)
			}
			if s := e.chatStatus(e.app, k.Key, "gpt-test"); s != http.StatusTooManyRequests {
				t.Errorf("second request in the minute on the other replica: %d, want 429 under the hash's 1 rpm", s)
			}
			h, err := c.HGetAll(context.Background(), quota.PolicyHashPrefix+"hash-user").Result()
			if err != nil || h["userRpm"] != "1" || h["updatedBy"] != "governance" {
				t.Errorf("the hash after it was applied: %v, %v; want it as the other system wrote it", h, err)
			}

			// A later write, with no admin change just before it, within about one poll.
			written = time.Now()
			if err := c.HSet(context.Background(), quota.PolicyHashPrefix+"hash-user", "userConcurrent", "7").Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 8*time.Second, "both replicas to apply the second write", func() bool {
				for _, a := range []*app{e.app, other} {
					if p, ok := a.quota.policies.Lookup(quota.KindUser, "hash-user", ""); !ok || !eq(p.Concurrent, 7) || !eq(p.RPM, 1) {
						return false
					}
				}
				return true
			})
			t.Logf("second write applied on both replicas %v after the HSET", time.Since(written))

			// A hash that disappears (a flushed or restarted Redis) is written again from the
			// store: the limits stay.
			if err := c.Del(context.Background(), quota.PolicyHashPrefix+"hash-user").Err(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 8*time.Second, "the hash written again from the store", func() bool {
				h, _ := c.HGetAll(context.Background(), quota.PolicyHashPrefix+"hash-user").Result()
				return h["userRpm"] == "1" && h["userConcurrent"] == "7" && h["userTokensPerDay"] == "0"
			})
			for _, a := range []*app{e.app, other} {
				if p, ok := a.quota.policies.Lookup(quota.KindUser, "hash-user", ""); !ok || !eq(p.RPM, 1) || !eq(p.Concurrent, 7) {
					t.Errorf("after the hash was lost: policy %+v, %v; want it kept", p, ok)
				}
			}
		})
	}
}

func eq(p *int64, v int64) bool { return p != nil && *p == v }

func fmtPolicies(ps []store.QuotaPolicy) string {
	out := ""
	for _, p := range ps {
		out += " {" + p.SubjectType + "/" + p.SubjectID + " rpm " + fmtPtr(p.RPM) + " tpm " + fmtPtr(p.TPM) +
			" day " + fmtPtr(p.TokensPerDay) + " conc " + fmtPtr(p.Concurrent) + " budget " + fmtPtr(p.BudgetDayMicroUSD) + "}"
	}
	return out
}

func fmtPtr(p *int64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatInt(*p, 10)
}
