package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// moneyBody costs exactly 25 µUSD at $1 per 1M tokens: the mock counts 3 + 2 prompt tokens for
// "one two" and answers 20 completion tokens (max_tokens caps it at 20 as well).
const moneyBody = `{"model":"gpt-test","messages":[{"role":"user","content":"one two"}],"max_tokens":20}`

// moneyReserveMicro is what the gateway reserves for moneyBody, in µUSD at $1 per 1M tokens: the
// prompt estimate (body bytes / 4 + 1) plus max_tokens.
var moneyReserveMicro = int64(len(moneyBody)/4 + 1 + 20)

// sendMoney sends moneyBody to a replica and returns the status, the error type of a refusal
// and its Retry-After.
func (e *env) sendMoney(a *app, key string) (status int, errType, retryAfter string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/v1/chat/completions", strings.NewReader(moneyBody))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Error(err)
		return 0, "", ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		errType, _, _ = apiError(e.t, resp)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, errType, resp.Header.Get("Retry-After")
}

// spendUntilRefused sends requests one after another until one is refused, and returns how many
// were answered; the refusal must be insufficient_quota.
func (e *env) spendUntilRefused(a *app, key string, max int) (int, string) {
	e.t.Helper()
	for i := 0; i < max; i++ {
		status, typ, retry := e.sendMoney(a, key)
		if status == http.StatusOK {
			continue
		}
		if status != http.StatusTooManyRequests || typ != "insufficient_quota" {
			e.t.Fatalf("request %d: %d %s, want 200 or 429 insufficient_quota", i, status, typ)
		}
		return i, retry
	}
	e.t.Fatalf("no refusal in %d requests", max)
	return 0, ""
}

// waitRecords waits until the ledger holds n records of a key.
func (e *env) waitRecords(keyID string, n int) []store.UsageRecord {
	e.t.Helper()
	var recs []store.UsageRecord
	waitFor(e.t, 10*time.Second, fmt.Sprintf("%d usage records of key %s", n, keyID), func() bool {
		all, err := e.app.store.ListUsage(context.Background(), store.UsageFilter{KeyID: keyID, Limit: 1000})
		if err != nil {
			e.t.Fatal(err)
		}
		recs = all
		return len(all) >= n
	})
	if len(recs) != n {
		e.t.Fatalf("%d usage records of key %s, want %d", len(recs), keyID, n)
	}
	return recs
}

// TestBudgets: a key, a user and a tenant with a USD budget are refused with insufficient_quota
// once it is spent (counting requests in flight), with Retry-After naming the reset; a refusal
// never reaches the upstream; and a gateway that did not see the spend (a restart, another
// replica) still refuses, from the ledger's rollups.
func TestBudgets(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"embedded":         nil,
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)

			// A key's daily budget of 100 µUSD: four requests of 25 reach it exactly.
			k := e.newKey(createKeyBody{Name: "budgeted"})
			e.putPolicy("/admin/quota/policies/key/"+k.ID, `{"budget_usd_per_day":"0.0001"}`)
			waitPolicy(t, "key", k.ID, e.app)
			before := e.up.Stats().Requests
			n, retry := e.spendUntilRefused(e.app, k.Key, 10)
			if n != 4 {
				t.Errorf("%d requests answered under a 100 µUSD budget at 25 µUSD each, want 4", n)
			}
			if got := e.up.Stats().Requests - before; got != int64(n) {
				t.Errorf("upstream saw %d requests, want %d: a refusal reached it", got, n)
			}
			now := time.Now().UTC()
			untilMidnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC).Sub(now)
			if secs, err := time.ParseDuration(retry + "s"); err != nil || secs < untilMidnight-time.Minute || secs > untilMidnight+time.Minute {
				t.Errorf("Retry-After %q, want the seconds until 00:00 UTC (%v)", retry, untilMidnight)
			}
			recs := e.waitRecords(k.ID, n+1)
			var spent int64
			for _, r := range recs {
				if r.Status == http.StatusTooManyRequests && r.CostPicoUSD != nil {
					t.Errorf("the refused request was costed: %+v", r)
				}
				if r.CostPicoUSD != nil {
					spent += *r.CostPicoUSD
				}
			}
			if spent != 100_000_000 {
				t.Errorf("key spent %d pUSD, want exactly its budget, 100000000", spent)
			}
			// A gateway that never saw this spend refuses from the ledger.
			fresh := e.replica(nil)
			if status, typ, _ := e.sendMoney(fresh, k.Key); status != http.StatusTooManyRequests || typ != "insufficient_quota" {
				t.Errorf("a fresh replica answered %d %s for a spent budget", status, typ)
			}
			// Raising the budget applies at once.
			e.putPolicy("/admin/quota/policies/key/"+k.ID, `{"budget_usd_per_day":"0.000125"}`)
			waitPolicy(t, "key", k.ID, e.app)
			if n, _ := e.spendUntilRefused(e.app, k.Key, 10); n != 1 {
				t.Errorf("%d requests answered after a 25 µUSD raise, want 1", n)
			}

			// A user's monthly budget of 50 µUSD: two requests.
			u := e.newKey(createKeyBody{Name: "monthly", UserID: "budget-user"})
			e.putPolicy("/admin/quota/policies/user/budget-user", `{"budget_usd_per_month":"0.00005","rpm":100}`)
			waitPolicy(t, "user", "budget-user", e.app)
			if n, _ := e.spendUntilRefused(e.app, u.Key, 10); n != 2 {
				t.Errorf("%d requests answered under a 50 µUSD monthly budget, want 2", n)
			}
			// The governance API's policy endpoint (PUT /admin/quota/policy) leaves the budget alone.
			e.putPolicy("/admin/quota/policy/budget-user", `{"userRpm":50}`)
			var view struct{ Data []map[string]any }
			e.adminGet("/admin/quota/policies/user/budget-user", &view)
			if len(view.Data) != 1 || view.Data[0]["budget_usd_per_month"] != "0.00005" || view.Data[0]["rpm"] != 50.0 {
				t.Errorf("user policy after PUT /admin/quota/policy: %v, want the monthly budget kept", view)
			}

			// The tenant has spent 175 µUSD so far; a daily budget of 225 leaves two requests for
			// a new key of the tenant (its spend is read from the ledger: wait for it there).
			waitFor(t, 10*time.Second, "the tenant's spend in the ledger", func() bool {
				_, day, err := e.app.store.Spend(context.Background(), store.SpendFilter{SubjectType: "tenant", SubjectID: "default", Day: time.Now()})
				return err == nil && day.Cmp(big.NewInt(175_000_000)) == 0
			})
			e.putPolicy("/admin/quota/policies/tenant/default", `{"budget_usd_per_day":"0.000225"}`)
			waitPolicy(t, "tenant", "default", e.app)
			other := e.newKey(createKeyBody{Name: "tenant-member"})
			if n, _ := e.spendUntilRefused(e.app, other.Key, 10); n != 2 {
				t.Errorf("%d requests answered under the tenant's budget, want 2", n)
			}
		})
	}
}

// TestCreditsHoldUnderConcurrency: two gateways sharing Redis and PostgreSQL take 100 concurrent
// requests against a balance that pays for 20; the balance never goes below zero by more than
// one request's reservation, every answered request is charged exactly once, and every refusal
// is insufficient_quota without reaching the upstream.
func TestCreditsHoldUnderConcurrency(t *testing.T) {
	for name, url := range redisBackends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPostgres(t), withRedisURL(url))
			replicas := []*app{e.app, e.replica(nil)}
			e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)
			k := e.newKey(createKeyBody{Name: "prepaid", UserID: "small-balance"})
			e.adminSend(http.MethodPost, "/admin/credits/user/small-balance/topup", `{"amount_usd":"0.0005"}`, nil)
			// Both replicas must price the model before the burst: an unpriced request is neither
			// reserved nor charged.
			waitFor(t, 5*time.Second, "the price on every replica", func() bool {
				for _, r := range replicas {
					if _, ok := r.gateway.Prices().Lookup("up-model"); !ok {
						return false
					}
				}
				return true
			})
			before := e.up.Stats().Requests
			var ok, refused atomic.Int64
			// One request per replica first, so each has read the account (a first read that
			// misses its 1 s deadline on a loaded machine would let requests through, fail-open).
			for i, r := range replicas {
				if status, typ, _ := e.sendMoney(r, k.Key); status != http.StatusOK {
					t.Fatalf("warm-up on replica %d: %d %s", i, status, typ)
				}
				ok.Add(1)
			}
			var wg sync.WaitGroup
			for i := range 98 {
				wg.Go(func() {
					status, typ, _ := e.sendMoney(replicas[i%2], k.Key)
					switch {
					case status == http.StatusOK:
						ok.Add(1)
					case status == http.StatusTooManyRequests && typ == "insufficient_quota":
						refused.Add(1)
					default:
						t.Errorf("request %d: %d %s", i, status, typ)
					}
				})
			}
			wg.Wait()
			answered := ok.Load()
			if answered+refused.Load() != 100 || answered == 0 || refused.Load() == 0 {
				t.Fatalf("%d answered, %d refused: want both, 100 in all", answered, refused.Load())
			}
			if got := e.up.Stats().Requests - before; got != answered {
				t.Errorf("upstream saw %d requests, %d were answered", got, answered)
			}
			e.waitRecords(k.ID, 100)
			var acct struct {
				Balance string `json:"balance_usd"`
			}
			e.adminSend(http.MethodGet, "/admin/credits/user/small-balance", "", &acct)
			a, err := e.app.store.CreditAccountOf(context.Background(), "user", "small-balance")
			if err != nil {
				t.Fatal(err)
			}
			// 500 µUSD granted, 25 µUSD charged per answered request, once each.
			want := big.NewInt((500 - 25*answered) * 1_000_000)
			if a.BalancePicoUSD.Cmp(want) != 0 {
				t.Errorf("balance %v pUSD after %d answered requests, want %v (each charged once)", a.BalancePicoUSD, answered, want)
			}
			if floor := big.NewInt(-moneyReserveMicro * 1_000_000); a.BalancePicoUSD.Cmp(floor) < 0 {
				t.Errorf("balance %v pUSD went below the bound of one reservation (%v)", a.BalancePicoUSD, floor)
			}
			t.Logf("%d answered, %d refused; balance %v pUSD", answered, refused.Load(), a.BalancePicoUSD)
			if answered > 21 {
				t.Errorf("%d requests answered against a balance paying for 20", answered)
			}
			entries, err := e.app.store.CreditEntries(context.Background(), a.ID, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			charges := 0
			for _, en := range entries {
				if en.Kind == "charge" {
					charges++
				}
			}
			if charges != int(answered) {
				t.Errorf("%d charge entries for %d answered requests", charges, answered)
			}
			noFallback(t, e, replicas...)
		})
	}
}

// TestCallerUsage: GET /v1/usage shows the caller its own usage today and this month, its
// limits and what it has used of them, its budgets and its prepaid balance — and nothing of
// another key's.
func TestCallerUsage(t *testing.T) {
	e := newEnv(t)
	e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)
	k := e.newKey(createKeyBody{Name: "me", UserID: "usage-user", Tier: "open"})
	e.putPolicy("/admin/quota/policies/user/usage-user", `{"budget_usd_per_day":"1","rpm":7}`)
	e.adminSend(http.MethodPost, "/admin/credits/user/usage-user/topup", `{"amount_usd":"2"}`, nil)
	for range 3 {
		if status, typ, _ := e.sendMoney(e.app, k.Key); status != 200 {
			t.Fatalf("request: %d %s", status, typ)
		}
	}
	e.sendMoney(e.app, e.key) // another key's request: not the caller's
	e.waitRecords(k.ID, 3)
	var u struct {
		KeyID string `json:"key_id"`
		Today struct {
			Requests         int64  `json:"requests"`
			PromptTokens     int64  `json:"prompt_tokens"`
			CompletionTokens int64  `json:"completion_tokens"`
			CostUSD          string `json:"cost_usd"`
		} `json:"today"`
		Month struct {
			Requests int64 `json:"requests"`
		} `json:"month"`
		Quota []struct {
			Subject string `json:"subject"`
			Limits  struct {
				RPM int64 `json:"rpm"`
			} `json:"limits"`
			Used *struct {
				Requests int64 `json:"requests"`
			} `json:"used"`
			Budgets []struct {
				Period       string `json:"period"`
				LimitUSD     string `json:"limit_usd"`
				SpentUSD     string `json:"spent_usd"`
				RemainingUSD string `json:"remaining_usd"`
			} `json:"budgets"`
		} `json:"quota"`
		Credit struct {
			Balance string `json:"balance_usd"`
		} `json:"credit"`
	}
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+"/usage", nil)
	req.Header.Set("Authorization", "Bearer "+k.Key)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(raw, &u); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s (%v)", resp.StatusCode, raw, err)
	}
	if u.KeyID != k.ID || u.Today.Requests != 3 || u.Month.Requests != 3 || u.Today.PromptTokens != 15 ||
		u.Today.CompletionTokens != 60 || u.Today.CostUSD != "0.000075" {
		t.Errorf("own usage: %s", raw)
	}
	if len(u.Quota) == 0 || u.Quota[0].Subject != "user/usage-user" || u.Quota[0].Limits.RPM != 7 ||
		u.Quota[0].Used == nil || u.Quota[0].Used.Requests != 3 {
		t.Errorf("quota: %s", raw)
	}
	if b := u.Quota[0].Budgets; len(b) != 1 || b[0].Period != "day" || b[0].LimitUSD != "1" ||
		b[0].SpentUSD != "0.000075" || b[0].RemainingUSD != "0.999925" {
		t.Errorf("budgets: %s", raw)
	}
	if u.Credit.Balance != "1.999925" {
		t.Errorf("credit: %s", raw)
	}
}
