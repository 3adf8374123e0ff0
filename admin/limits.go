package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Limits of tenants and keys are views of quota_policies (the model-less policy of subject
// "tenant" or "key"): the same rows /admin/quota/policies shows and the gateway enforces.

// policyOf parses a limits body into the policy of one subject, answering 400 itself. prefix
// names the body field in errors ("limits." or "").
func policyOf(c *gin.Context, prefix string, b policyBody, typ quota.Kind, id, model string) (store.QuotaPolicy, bool) {
	if !checkLimits(c, map[string]*int64{prefix + "rpm": b.RPM, prefix + "tpm": b.TPM,
		prefix + "tokens_per_day": b.TokensPerDay, prefix + "concurrent": b.Concurrent}) {
		return store.QuotaPolicy{}, false
	}
	perDay, ok := budgetOf(c, prefix+"budget_usd_per_day", b.BudgetUSDPerDay)
	if !ok {
		return store.QuotaPolicy{}, false
	}
	perMonth, ok := budgetOf(c, prefix+"budget_usd_per_month", b.BudgetUSDPerMonth)
	if !ok {
		return store.QuotaPolicy{}, false
	}
	return store.QuotaPolicy{SubjectType: string(typ), SubjectID: id, Model: model, RPM: b.RPM, TPM: b.TPM,
		TokensPerDay: b.TokensPerDay, Concurrent: b.Concurrent, BudgetDayMicroUSD: perDay, BudgetMonthMicroUSD: perMonth}, true
}

// patchLimits applies a PATCH's limits field to *lim, the subject's model-less policy (null: none).
func patchLimits(c *gin.Context, o optional[policyBody], typ quota.Kind, id string, lim **store.QuotaPolicy) bool {
	if !o.Set {
		return true
	}
	*lim = nil
	if o.Val == nil {
		return true
	}
	p, ok := policyOf(c, "limits.", *o.Val, typ, id, "")
	*lim = &p
	return ok
}

// modelLess returns a subject's model-less policy from the store (nil: none).
func (s *Server) modelLess(ctx context.Context, typ quota.Kind, id string) (*store.QuotaPolicy, error) {
	ps, err := s.d.Store.QuotaPolicies(ctx, string(typ), id)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Model == "" {
			return &p, nil
		}
	}
	return nil, nil
}

// limitsField names a limit inside a "limits" object; policyField names it in a policy body.
func limitsField(name string) string { return "limits." + name }
func policyField(name string) string { return name }

// userPolicyField names a limit as the user policy body of PUT /admin/quota/policy does (userRpm …).
func userPolicyField(name string) string {
	if n, ok := map[string]string{"rpm": "userRpm", "tpm": "userTpm", "tokens_per_day": "userTokensPerDay", "concurrent": "userConcurrent"}[name]; ok {
		return n
	}
	return name
}

// limitsView renders a model-less policy as the "limits" of a tenant or key (null: none).
func limitsView(p *store.QuotaPolicy) any {
	if p == nil {
		return nil
	}
	return gin.H{"rpm": p.RPM, "tpm": p.TPM, "tokens_per_day": p.TokensPerDay, "concurrent": p.Concurrent,
		"budget_usd_per_day": usdView(p.BudgetDayMicroUSD), "budget_usd_per_month": usdView(p.BudgetMonthMicroUSD)}
}

// putLimits stores (or, for nil, removes) a subject's model-less policy through the policy book,
// so every replica applies it.
func (s *Server) putLimits(ctx context.Context, typ quota.Kind, id string, p *store.QuotaPolicy) error {
	if s.d.Quota == nil {
		if p == nil {
			return nil
		}
		return errors.New("admin: limits need the quota endpoints (Deps.Quota)")
	}
	if p == nil {
		err := s.d.Quota.Policies.Delete(ctx, typ, id, "")
		if err != nil && !isNotFound(err) {
			return err
		}
		return nil
	}
	return s.d.Quota.Policies.Put(ctx, *p)
}

// withinTenant checks that models and limits meant for a key or user of the tenant go no further
// than the tenant's own: every model in its allowlist (when it has one), and every limit the
// tenant sets matched by one no larger (an explicit 0, unlimited, is larger). A limit the key
// leaves unset is fine: the tenant's applies. It answers 400 itself, naming the field.
func (s *Server) withinTenant(c *gin.Context, tenantID string, models []string, p *store.QuotaPolicy, field func(string) string) bool {
	ctx := c.Request.Context()
	t, err := s.d.Store.GetTenant(ctx, tenantID)
	if err != nil {
		if isNotFound(err) {
			invalid(c, "tenant_id", "no tenant "+strconv.Quote(tenantID)+".")
			return false
		}
		s.internal(c, err)
		return false
	}
	if t.DeletedAt != nil {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "tenant_deleted", "tenant_id", "tenant_id: tenant "+strconv.Quote(tenantID)+" is deleted.")
		return false
	}
	if len(t.Models) > 0 {
		for i, m := range models {
			if !slices.Contains(t.Models, m) {
				invalid(c, "models["+strconv.Itoa(i)+"]", strconv.Quote(m)+" is not among the models of tenant "+strconv.Quote(tenantID)+" ("+strings.Join(t.Models, ", ")+").")
				return false
			}
		}
	}
	if p == nil {
		return true
	}
	tp, err := s.modelLess(ctx, quota.KindTenant, tenantID)
	if err != nil {
		s.internal(c, err)
		return false
	}
	if tp == nil {
		return true
	}
	for _, d := range []struct {
		name       string
		own, limit *int64
		money      bool
	}{
		{"rpm", p.RPM, tp.RPM, false}, {"tpm", p.TPM, tp.TPM, false},
		{"tokens_per_day", p.TokensPerDay, tp.TokensPerDay, false}, {"concurrent", p.Concurrent, tp.Concurrent, false},
		{"budget_usd_per_day", p.BudgetDayMicroUSD, tp.BudgetDayMicroUSD, true},
		{"budget_usd_per_month", p.BudgetMonthMicroUSD, tp.BudgetMonthMicroUSD, true},
	} {
		if d.limit == nil || *d.limit == 0 || d.own == nil || (*d.own > 0 && *d.own <= *d.limit) {
			continue
		}
		lim := strconv.FormatInt(*d.limit, 10)
		if d.money {
			lim = billing.FormatMicro(*d.limit)
		}
		what := "exceeds"
		if *d.own == 0 {
			what = "is unlimited, beyond"
		}
		invalid(c, field(d.name), what+" the limit of tenant "+strconv.Quote(tenantID)+" ("+lim+").")
		return false
	}
	return true
}
