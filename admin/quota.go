package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// QuotaDeps are what the quota endpoints need; nil disables them.
type QuotaDeps struct {
	Policies *quota.PolicyBook
	Limiter  quota.Limiter
	Options  quota.Options
}

// userPolicyBody is the governance API's policy shape (camelCase field names, also those of the
// Redis hash that other systems write). An absent or null field inherits from the user's tier; 0 means unlimited.
type userPolicyBody struct {
	UserRPM          *int64 `json:"userRpm"`
	UserConcurrent   *int64 `json:"userConcurrent"`
	UserTPM          *int64 `json:"userTpm"`
	UserTokensPerDay *int64 `json:"userTokensPerDay"`
}

// policyBody is the generic policy shape of /admin/quota/policies (snake_case). Budgets are
// decimal USD strings (or numbers) with at most 6 decimal places; absent, null or 0: no budget.
type policyBody struct {
	RPM               *int64 `json:"rpm"`
	TPM               *int64 `json:"tpm"`
	TokensPerDay      *int64 `json:"tokens_per_day"`
	Concurrent        *int64 `json:"concurrent"`
	BudgetUSDPerDay   *usd   `json:"budget_usd_per_day"`
	BudgetUSDPerMonth *usd   `json:"budget_usd_per_month"`
}

// budgetOf parses an optional budget field to micro-USD (nil when absent).
func budgetOf(c *gin.Context, field string, v *usd) (*int64, bool) {
	if v == nil {
		return nil, true
	}
	m, err := billing.ParseUSD(string(*v))
	if err != nil || m < 0 {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", field, field+": want a non-negative decimal USD amount with at most 6 decimal places.")
		return nil, false
	}
	return &m, true
}

// usdView renders an optional micro-USD amount as a decimal USD string, or null.
func usdView(micro *int64) any {
	if micro == nil {
		return nil
	}
	return billing.FormatMicro(*micro)
}

func (s *Server) routeQuota(a *gin.RouterGroup) {
	s.handle(a, http.MethodPut, "/quota/policy/:userId", write(areaQuota), s.putUserPolicy)
	s.handle(a, http.MethodGet, "/quota/policy/:userId", read(areaQuota), s.getUserPolicy)
	s.handle(a, http.MethodDelete, "/quota/policy/:userId", write(areaQuota), s.deleteUserPolicy)
	s.handle(a, http.MethodGet, "/quota/usage/:userId", read(areaQuota), s.userUsage)
	s.handle(a, http.MethodDelete, "/quota/session/:sessionId", write(areaQuota), s.clearSession)
	s.handle(a, http.MethodGet, "/quota/policies", read(areaQuota), s.listPolicies)
	s.handle(a, http.MethodPut, "/quota/policies/:subjectType/:subjectId", write(areaQuota), s.putPolicy)
	s.handle(a, http.MethodGet, "/quota/policies/:subjectType/:subjectId", read(areaQuota), s.getPolicies)
	s.handle(a, http.MethodDelete, "/quota/policies/:subjectType/:subjectId", write(areaQuota), s.deletePolicy)
	s.handle(a, http.MethodGet, "/quota/tiers", read(areaQuota), s.listTiers)
}

// policyChange checks that the caller may change a subject's policies: a scoped token only those
// of its tenant's users and keys (a tenant's own limits are changed by an unscoped token), and a
// user's or key's limits stay within its tenant's. It answers itself when not, and returns the
// subject's tenant ("" for a subject that does not exist yet, which a write must allow
// explicitly: see knownSubject).
func (s *Server) policyChange(c *gin.Context, typ quota.Kind, id, param string, p *store.QuotaPolicy, field func(string) string) (string, bool) {
	if typ == quota.KindTenant && who(c).Tenant != "" {
		fail(c, http.StatusForbidden, api.TypePermission, "tenant_scoped_token", param, "A token scoped to a tenant may not change a tenant's own limits.")
		return "", false
	}
	var tenant string
	var found, ok bool
	if p == nil { // a delete: a policy left behind by a subject that is gone can be removed
		tenant, found, ok = s.scopedSubject(c, typ, id, param)
	} else {
		tenant, found, ok = s.knownSubject(c, typ, id, param)
	}
	if !ok || !found || p == nil || typ == quota.KindTenant {
		// A policy set ahead of its subject is checked when the key is made.
		return tenant, ok
	}
	return tenant, s.withinTenant(c, tenant, nil, p, field)
}

// policyAudit records a policy change of a subject of the tenant, with its policies before and
// after.
func (s *Server) policyAudit(c *gin.Context, action string, typ quota.Kind, id, tenant string, before []store.QuotaPolicy) {
	after, err := s.d.Store.QuotaPolicies(c.Request.Context(), string(typ), id)
	if err != nil {
		s.d.Log.Warn("admin audit: reading the policies after a change failed", "err", err)
	}
	s.audit(c, action, string(typ)+"/"+id, tenant, policiesView(before), policiesView(after))
}

func policiesView(ps []store.QuotaPolicy) any {
	if len(ps) == 0 {
		return nil
	}
	out := make([]gin.H, 0, len(ps))
	for _, p := range ps {
		out = append(out, policyView(p))
	}
	return out
}

// checkLimits rejects negative limits, naming the field.
func checkLimits(c *gin.Context, fields map[string]*int64) bool {
	for name, v := range fields {
		if v != nil && *v < 0 {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", name, name+": must be 0 (unlimited) or more.")
			return false
		}
	}
	return true
}

func validModelParam(c *gin.Context) (string, bool) {
	m := c.Query("model")
	if len(m) > 200 {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "model", "model: at most 200 characters.")
		return "", false
	}
	return m, true
}

func (s *Server) putUserPolicy(c *gin.Context) {
	var b userPolicyBody
	if !decode(c, &b) || !checkLimits(c, map[string]*int64{"userRpm": b.UserRPM, "userConcurrent": b.UserConcurrent, "userTpm": b.UserTPM, "userTokensPerDay": b.UserTokensPerDay}) {
		return
	}
	model, ok := validModelParam(c)
	if !ok {
		return
	}
	p := store.QuotaPolicy{SubjectType: string(quota.KindUser), SubjectID: c.Param("userId"), Model: model,
		RPM: b.UserRPM, Concurrent: b.UserConcurrent, TPM: b.UserTPM, TokensPerDay: b.UserTokensPerDay}
	// That shape has no budgets: a budget set through /admin/quota/policies stays.
	old, err := s.d.Quota.Policies.Policies(c.Request.Context(), quota.KindUser, p.SubjectID)
	if err != nil {
		s.internal(c, err)
		return
	}
	for _, o := range old {
		if o.Model == model {
			p.BudgetDayMicroUSD, p.BudgetMonthMicroUSD = o.BudgetDayMicroUSD, o.BudgetMonthMicroUSD
		}
	}
	tenant, ok := s.policyChange(c, quota.KindUser, p.SubjectID, "userId", &p, userPolicyField)
	if !ok {
		return
	}
	if err := s.d.Quota.Policies.Put(c.Request.Context(), p); err != nil {
		s.internal(c, err)
		return
	}
	s.policyAudit(c, "quota_policy.put", quota.KindUser, p.SubjectID, tenant, old)
	s.getUserPolicy(c)
}

// userLimitsView renders limits with the user policy body's names.
func userLimitsView(l quota.Limits) gin.H {
	return gin.H{"userRpm": l.RPM, "userConcurrent": l.Concurrent, "userTpm": l.TPM, "userTokensPerDay": l.TokensPerDay}
}

// effectiveUserLimits is what the gateway applies to a user's requests (model-less).
func (s *Server) effectiveUserLimits(ctx context.Context, userID string) (quota.Limits, string, error) {
	o := s.d.Quota.Options
	tier := ""
	u, err := s.d.Store.GetUser(ctx, userID)
	switch {
	case err == nil:
		tier = u.Tier
	case !errors.Is(err, store.ErrNotFound):
		return quota.Limits{}, "", err
	}
	if _, ok := o.Tiers[tier]; !ok {
		tier = o.DefaultTier
	}
	l := o.TierLimits(tier)
	ps, err := s.d.Quota.Policies.Policies(ctx, quota.KindUser, userID)
	if err != nil {
		return l, tier, err
	}
	for _, p := range ps {
		if p.Model == "" {
			l = quota.ApplyPolicy(l, p)
		}
	}
	return l, tier, nil
}

func (s *Server) getUserPolicy(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("userId")
	if !s.subjectInScope(c, quota.KindUser, id, "userId") {
		return
	}
	ps, err := s.d.Quota.Policies.Policies(ctx, quota.KindUser, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	eff, tier, err := s.effectiveUserLimits(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := []gin.H{}
	for _, p := range ps {
		out = append(out, gin.H{"model": p.Model, "userRpm": p.RPM, "userConcurrent": p.Concurrent,
			"userTpm": p.TPM, "userTokensPerDay": p.TokensPerDay, "updatedAt": p.UpdatedAt})
	}
	c.JSON(http.StatusOK, gin.H{"userId": id, "tier": tier, "policies": out, "effective": userLimitsView(eff)})
}

func (s *Server) deleteUserPolicy(c *gin.Context) {
	s.deletePolicyOf(c, quota.KindUser, c.Param("userId"), "userId")
}

// deletePolicyOf removes one policy (?model= selects a model-specific one) and answers 204, or 404
// naming param when there was none.
func (s *Server) deletePolicyOf(c *gin.Context, typ quota.Kind, id, param string) {
	model, ok := validModelParam(c)
	if !ok {
		return
	}
	tenant, ok := s.policyChange(c, typ, id, param, nil, policyField)
	if !ok {
		return
	}
	before, err := s.d.Store.QuotaPolicies(c.Request.Context(), string(typ), id)
	if err != nil {
		s.internal(c, err)
		return
	}
	err = s.d.Quota.Policies.Delete(c.Request.Context(), typ, id, model)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, api.TypeNotFound, "policy_not_found", param, "No quota policy for that subject (and model).")
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	s.policyAudit(c, "quota_policy.delete", typ, id, tenant, before)
	c.Status(http.StatusNoContent)
}

// userUsage reports the user's consumption now, against its effective limits.
func (s *Server) userUsage(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("userId")
	if !s.subjectInScope(c, quota.KindUser, id, "userId") {
		return
	}
	eff, tier, err := s.effectiveUserLimits(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	tenant := store.DefaultTenant
	if u, err := s.d.Store.GetUser(ctx, id); err == nil {
		tenant = u.TenantID
	}
	ur, ok := s.d.Quota.Limiter.(quota.UsageReader)
	if !ok {
		fail(c, http.StatusNotImplemented, api.TypeServer, "not_supported", "", "This limiter cannot report usage.")
		return
	}
	u, err := ur.Usage(ctx, quota.Subject{Kind: quota.KindUser, ID: id, Tenant: tenant, Limits: eff})
	if err != nil {
		fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "quota_store_unavailable", "", "The quota store did not answer; retry shortly.")
		return
	}
	c.JSON(http.StatusOK, gin.H{"userId": id, "tenantId": tenant, "tier": tier,
		"requests": u.Requests, "concurrent": u.Concurrent, "tokensMinute": u.TokensMinute, "tokensDay": u.TokensDay,
		"limits": userLimitsView(eff)})
}

func (s *Server) clearSession(c *gin.Context) {
	tenant, ok := scopedTenant(c, c.Query("tenantId"), "tenantId")
	if !ok {
		return
	}
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	sc, ok := s.d.Quota.Limiter.(quota.SessionClearer)
	if !ok {
		fail(c, http.StatusNotImplemented, api.TypeServer, "not_supported", "", "This limiter cannot clear sessions.")
		return
	}
	if err := sc.ClearSession(c.Request.Context(), tenant, c.Param("sessionId")); err != nil {
		fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "quota_store_unavailable", "", "The quota store did not answer; retry shortly.")
		return
	}
	s.audit(c, "quota_session.clear", tenant+"/"+c.Param("sessionId"), tenant, nil, nil)
	c.Status(http.StatusNoContent)
}

var subjectTypes = map[quota.Kind]bool{quota.KindUser: true, quota.KindKey: true, quota.KindTenant: true}

func subjectParams(c *gin.Context) (typ quota.Kind, id string, ok bool) {
	typ, id = quota.Kind(c.Param("subjectType")), c.Param("subjectId")
	if !subjectTypes[typ] {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "subjectType", "subjectType: want user, key or tenant.")
		return "", "", false
	}
	return typ, id, true
}

func policyView(p store.QuotaPolicy) gin.H {
	return gin.H{"subject_type": p.SubjectType, "subject_id": p.SubjectID, "model": p.Model, "rpm": p.RPM,
		"tpm": p.TPM, "tokens_per_day": p.TokensPerDay, "concurrent": p.Concurrent,
		"budget_usd_per_day": usdView(p.BudgetDayMicroUSD), "budget_usd_per_month": usdView(p.BudgetMonthMicroUSD),
		"updated_at": p.UpdatedAt}
}

func (s *Server) putPolicy(c *gin.Context) {
	typ, id, ok := subjectParams(c)
	if !ok {
		return
	}
	var b policyBody
	if !decode(c, &b) {
		return
	}
	model, ok := validModelParam(c)
	if !ok {
		return
	}
	p, ok := policyOf(c, "", b, typ, id, model)
	if !ok {
		return
	}
	tenant, ok := s.policyChange(c, typ, id, "subjectId", &p, policyField)
	if !ok {
		return
	}
	before, err := s.d.Store.QuotaPolicies(c.Request.Context(), string(typ), id)
	if err != nil {
		s.internal(c, err)
		return
	}
	if err := s.d.Quota.Policies.Put(c.Request.Context(), p); err != nil {
		s.internal(c, err)
		return
	}
	s.policyAudit(c, "quota_policy.put", typ, id, tenant, before)
	s.getPolicies(c)
}

func (s *Server) getPolicies(c *gin.Context) {
	typ, id, ok := subjectParams(c)
	if !ok || !s.subjectInScope(c, typ, id, "subjectId") {
		return
	}
	s.writePolicies(c, typ, id)
}

func (s *Server) listPolicies(c *gin.Context) {
	typ := quota.Kind(c.Query("subject_type"))
	if typ != "" && !subjectTypes[typ] {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "subject_type", "subject_type: want user, key or tenant.")
		return
	}
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	id := strings.TrimSpace(c.Query("subject_id"))
	var out []gin.H
	if typ != "" && id != "" {
		out, ok = s.policiesInScope(c, typ, id)
	} else {
		// The store selects one subject or all: either filter alone is applied here.
		out, ok = s.policiesInScope(c, "", "")
		out = slices.DeleteFunc(out, func(h gin.H) bool {
			return (typ != "" && h["subject_type"] != string(typ)) || (id != "" && h["subject_id"] != id)
		})
	}
	if ok {
		writeList(c, window(out, limit, offset), limit, offset, func(h gin.H) gin.H { return h })
	}
}

func (s *Server) writePolicies(c *gin.Context, typ quota.Kind, id string) {
	if out, ok := s.policiesInScope(c, typ, id); ok {
		c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
	}
}

// policiesInScope returns the views of the policies the caller may see, answering itself on
// failure.
func (s *Server) policiesInScope(c *gin.Context, typ quota.Kind, id string) ([]gin.H, bool) {
	ps, err := s.d.Quota.Policies.Policies(c.Request.Context(), typ, id)
	if err != nil {
		s.internal(c, err)
		return nil, false
	}
	out := make([]gin.H, 0, len(ps))
	scope := who(c).Tenant
	tenants := map[string]string{} // subject → tenant, for a scoped token
	for _, p := range ps {
		if scope != "" {
			sub := p.SubjectType + "\x00" + p.SubjectID
			t, seen := tenants[sub]
			if !seen {
				t, err = s.subjectTenant(c.Request.Context(), quota.Kind(p.SubjectType), p.SubjectID)
				if err != nil && !isNotFound(err) {
					s.internal(c, err)
					return nil, false
				}
				tenants[sub] = t
			}
			if t != scope {
				continue
			}
		}
		out = append(out, policyView(p))
	}
	return out, true
}

func (s *Server) deletePolicy(c *gin.Context) {
	if typ, id, ok := subjectParams(c); ok {
		s.deletePolicyOf(c, typ, id, "subjectId")
	}
}

// policyBook is the book of policies, nil without quota (Lookup on nil finds nothing).
func (q *QuotaDeps) policyBook() *quota.PolicyBook {
	if q == nil {
		return nil
	}
	return q.Policies
}

// tierKnown reports whether a tier is configured (any tier, without quota).
func (q *QuotaDeps) tierKnown(tier string) bool {
	if q == nil {
		return true
	}
	_, ok := q.Options.Tiers[tier]
	return ok
}

// defaultTier is the tier of users made without one.
func (q *QuotaDeps) defaultTier() string {
	if q == nil {
		return ""
	}
	return q.Options.DefaultTier
}

// listTiers is GET /admin/quota/tiers: each configured tier's limits (0: unlimited), by name, the
// default tier and the session limits, so the policies that override them can be read beside them.
func (s *Server) listTiers(c *gin.Context) {
	o := s.d.Quota.Options
	names := make([]string, 0, len(o.Tiers))
	for name := range o.Tiers {
		names = append(names, name)
	}
	sort.Strings(names)
	view := func(l quota.Limits) gin.H {
		return gin.H{"rpm": l.RPM, "tpm": l.TPM, "tokens_per_day": l.TokensPerDay, "concurrent": l.Concurrent}
	}
	out := make([]gin.H, 0, len(names))
	for _, name := range names {
		h := view(o.TierLimits(name))
		h["name"] = name
		out = append(out, h)
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "default_tier": o.DefaultTier, "session": view(o.Session), "data": out})
}
