package admin

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/apikey"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// API keys. The plaintext is shown once, by create and rotate; lists show the display prefix.
// A key's limits and budgets are its model-less quota policy; its models and limits never go
// beyond its tenant's. Every replica stops accepting a revoked key within the gateway's key-cache
// TTL (3 s).

func (s *Server) routeKeys(a *gin.RouterGroup) {
	s.handle(a, http.MethodPost, "/keys", write(areaKeys), s.createKey)
	s.handle(a, http.MethodGet, "/keys", read(areaKeys), s.listKeys)
	s.handle(a, http.MethodGet, "/keys/:id", read(areaKeys), s.getKey)
	s.handle(a, http.MethodPatch, "/keys/:id", write(areaKeys), s.updateKey)
	s.handle(a, http.MethodPost, "/keys/:id/rotate", write(areaKeys), s.rotateKey)
	s.handle(a, http.MethodDelete, "/keys/:id", write(areaKeys), s.revokeKey)
}

// keyView is an API key as the admin API shows it: never the secret, only its prefix.
type keyView struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Prefix    string            `json:"prefix"`
	UserID    string            `json:"user_id,omitempty"`
	TenantID  string            `json:"tenant_id"`
	Models    []string          `json:"models"`
	Limits    any               `json:"limits"`
	Metadata  map[string]string `json:"metadata"`
	Status    string            `json:"status"`
	ExpiresAt *time.Time        `json:"expires_at"`
	RevokedAt *time.Time        `json:"revoked_at"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt *time.Time        `json:"updated_at"`
	// ResponseCache: the key's answers go through the response cache, whatever the model.
	ResponseCache bool `json:"response_cache"`
	// Key is the plaintext, present only in the answers to create and rotate.
	Key string `json:"key,omitempty"`
	// PreviousKeyExpiresAt is when the secret before a rotation stops working (rotate only).
	PreviousKeyExpiresAt *time.Time `json:"previous_key_expires_at,omitempty"`
	// EffectiveLimits explains what the gateway applies to the key's requests (create, get,
	// update and rotate; absent from lists and without quota).
	EffectiveLimits *effectiveView `json:"effective_limits,omitempty"`
}

// effectiveView is a key's effective limits, in a fixed order for people reading it.
type effectiveView struct {
	RPM          limitView `json:"rpm"`
	TPM          limitView `json:"tpm"`
	TokensPerDay limitView `json:"tokens_per_day"`
	Concurrent   limitView `json:"concurrent"`
	BudgetDay    limitView `json:"budget_usd_per_day"`
	BudgetMonth  limitView `json:"budget_usd_per_month"`
}

// limitView is one effective limit: a number (0: unlimited) or, for budgets, decimal USD (null:
// none), and what sets it (quota.Limit.Source).
type limitView struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// effectiveLimits computes what the gateway applies to the key's requests with the function
// admission uses (quota.Options.SubjectsOf, then quota.Effective): the tightest of the key's
// own limits, its user's (tier and policy, or the default tier for a key without a user) and its
// tenant's policy. Nil when quotas are off.
func (s *Server) effectiveLimits(ctx context.Context, k store.APIKey) (*effectiveView, error) {
	q := s.d.Quota
	if q == nil {
		return nil, nil
	}
	o := q.Options.WithDefaults()
	if !*o.Enabled {
		return nil, nil
	}
	h := quota.Holder{KeyID: k.ID, UserID: k.UserID, TenantID: k.TenantID}
	if k.UserID != "" {
		u, err := s.d.Store.GetUser(ctx, k.UserID)
		switch {
		case err == nil:
			h.Tier = u.Tier
		case !isNotFound(err):
			return nil, err
		}
	}
	eff := quota.Effective(q.Policies, o.SubjectsOf(q.Policies, h, "", "", ""))
	rate := func(dim string) limitView { return limitView{Value: eff[dim].Value, Source: eff[dim].Source} }
	budget := func(dim string) limitView {
		l := limitView{Source: eff[dim].Source}
		if v := eff[dim].Value; v > 0 {
			l.Value = billing.FormatMicro(v)
		}
		return l
	}
	return &effectiveView{RPM: rate(quota.DimRPM), TPM: rate(quota.DimTPM), TokensPerDay: rate(quota.DimTokensPerDay),
		Concurrent: rate(quota.DimConcurrent), BudgetDay: budget(quota.DimBudgetDay), BudgetMonth: budget(quota.DimBudgetMonth)}, nil
}

func keyStatus(k store.APIKey, at time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return store.KeyRevoked
	case k.ExpiresAt != nil && !at.Before(*k.ExpiresAt):
		return store.KeyExpired
	}
	return store.KeyActive
}

func keyViewOf(k store.APIKey, limits *store.QuotaPolicy) keyView {
	return keyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, UserID: k.UserID, TenantID: k.TenantID,
		Models: orNone(k.Models), Limits: limitsView(limits), Metadata: orEmpty(k.Metadata), Status: keyStatus(k, time.Now()),
		ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt, ResponseCache: k.ResponseCache}
}

// CreateKeyRequest is the body of POST /admin/keys.
type CreateKeyRequest struct {
	Name   string   `json:"name"`
	Models []string `json:"models"`
	// UserID owns the key; a user that does not exist yet is created in the key's tenant with Tier.
	UserID string `json:"user_id"`
	Tier   string `json:"tier"`
	// TenantID owns a key without a user (default: the default tenant, or the token's tenant);
	// with a user it must be the user's tenant.
	TenantID  string            `json:"tenant_id"`
	Limits    *policyBody       `json:"limits"`
	ExpiresAt *time.Time        `json:"expires_at"`
	Metadata  map[string]string `json:"metadata"`
	// ResponseCache opts the key in to the response cache for every model.
	ResponseCache bool `json:"response_cache"`
}

// keyPatch is the body of PATCH /admin/keys/{id}: named fields replace, null clears.
type keyPatch struct {
	Name      *string                     `json:"name"`
	Models    optional[[]string]          `json:"models"`
	Limits    optional[policyBody]        `json:"limits"`
	ExpiresAt optional[time.Time]         `json:"expires_at"`
	Metadata  optional[map[string]string] `json:"metadata"`
	// ResponseCache turns the key's response cache opt-in on or off.
	ResponseCache *bool `json:"response_cache"`
}

func (s *Server) createKey(c *gin.Context) {
	var req CreateKeyRequest
	if !decode(c, &req) {
		return
	}
	if !checkText(c, "name", req.Name, 200, false) || !checkFuture(c, "expires_at", req.ExpiresAt) || !checkMetadata(c, req.Metadata) {
		return
	}
	models, ok := checkModels(c, req.Models)
	if !ok {
		return
	}
	tenant, ok := scopedTenant(c, req.TenantID, "tenant_id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if req.UserID != "" {
		if !checkID(c, "user_id", req.UserID) {
			return
		}
		u, ok := s.keyOwner(c, req.UserID, req.Tier, tenant)
		if !ok {
			return
		}
		tenant = u.TenantID
	}
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	id := "key_" + strings.ReplaceAll(newID(), "-", "")
	var lim *store.QuotaPolicy
	if req.Limits != nil {
		p, ok := policyOf(c, "limits.", *req.Limits, quota.KindKey, id, "")
		if !ok {
			return
		}
		lim = &p
	}
	if !s.withinTenant(c, tenant, models, lim, limitsField) {
		return
	}
	// The limits go in first: a key never exists, even for a moment, without them.
	if err := s.putLimits(ctx, quota.KindKey, id, lim); err != nil {
		s.internal(c, err)
		return
	}
	plain, hash, prefix := apikey.New()
	k := store.APIKey{ID: id, Name: req.Name, Prefix: prefix, UserID: req.UserID, TenantID: tenant, Models: models,
		ExpiresAt: req.ExpiresAt, Metadata: req.Metadata, CreatedAt: now(), ResponseCache: req.ResponseCache}
	if err := s.d.Store.CreateKey(ctx, k, hash); err != nil {
		_ = s.putLimits(context.WithoutCancel(ctx), quota.KindKey, id, nil)
		s.internal(c, err)
		return
	}
	v := keyViewOf(k, lim)
	s.audit(c, "key.create", k.ID, k.TenantID, nil, v)
	v.Key = plain
	if eff, err := s.effectiveLimits(ctx, k); err == nil {
		v.EffectiveLimits = eff
	} else { // the key exists: failing now would make a retry create a second one
		s.d.Log.Warn("admin: computing a key's effective limits failed", "key_id", k.ID, "err", err)
	}
	c.JSON(http.StatusCreated, v)
}

// keyOwner returns the live user that will own a key, creating it in the tenant (or the default
// tenant) when it does not exist yet. It answers itself when it cannot.
func (s *Server) keyOwner(c *gin.Context, userID, tier, tenant string) (store.User, bool) {
	ctx := c.Request.Context()
	u, err := s.d.Store.GetUser(ctx, userID)
	if isNotFound(err) {
		if tier == "" {
			tier = s.d.Quota.defaultTier()
		}
		if !s.checkTier(c, tier) {
			return u, false
		}
		if tenant == "" {
			tenant = store.DefaultTenant
		}
		u = store.User{ID: userID, TenantID: tenant, Tier: tier, CreatedAt: now()}
		err = s.d.Store.CreateUser(ctx, u)
		switch {
		case err == nil:
			s.audit(c, "user.create", u.ID, u.TenantID, nil, userViewOf(u))
		case isNotFound(err):
			invalid(c, "tenant_id", "no live tenant "+strconv.Quote(tenant)+".")
			return u, false
		case !isConflict(err): // a concurrent create of the same user is fine
			s.internal(c, err)
			return u, false
		}
		u, err = s.d.Store.GetUser(ctx, userID)
	}
	if err != nil {
		s.internal(c, err)
		return u, false
	}
	if !sees(c, u.TenantID) {
		notFound(c, "user", "user_id")
		return u, false
	}
	if tenant != "" && tenant != u.TenantID {
		invalid(c, "tenant_id", "user "+strconv.Quote(userID)+" belongs to tenant "+strconv.Quote(u.TenantID)+".")
		return u, false
	}
	if u.DeletedAt != nil {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "user_deleted", "user_id", "user_id: the user is deleted.")
		return u, false
	}
	return u, true
}

// keyInScope loads a key the caller may see, answering 404 itself otherwise.
func (s *Server) keyInScope(c *gin.Context) (store.APIKey, *store.QuotaPolicy, bool) {
	ctx := c.Request.Context()
	k, err := s.d.Store.GetKey(ctx, c.Param("id"))
	if isNotFound(err) || (err == nil && !sees(c, k.TenantID)) {
		notFound(c, "key", "id")
		return k, nil, false
	}
	if err != nil {
		s.internal(c, err)
		return k, nil, false
	}
	lim, err := s.modelLess(ctx, quota.KindKey, k.ID)
	if err != nil {
		s.internal(c, err)
		return k, nil, false
	}
	return k, lim, true
}

func (s *Server) getKey(c *gin.Context) {
	k, lim, ok := s.keyInScope(c)
	if !ok {
		return
	}
	v := keyViewOf(k, lim)
	var err error
	if v.EffectiveLimits, err = s.effectiveLimits(c.Request.Context(), k); err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

var keyStatuses = map[string]bool{"": true, store.KeyActive: true, store.KeyRevoked: true, store.KeyExpired: true}

func (s *Server) listKeys(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.KeyFilter{UserID: c.Query("user_id"), Name: c.Query("name"), Prefix: c.Query("prefix"),
		Status: c.Query("status"), Limit: limit + 1, Offset: offset}
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return
	}
	if !keyStatuses[f.Status] {
		invalid(c, "status", "want active, revoked or expired.")
		return
	}
	for name, v := range map[string]string{"user_id": f.UserID, "name": f.Name, "prefix": f.Prefix, "tenant_id": f.TenantID} {
		if !checkText(c, name, v, 200, false) {
			return
		}
	}
	keys, err := s.d.Store.ListKeys(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, keys, limit, offset, func(k store.APIKey) keyView {
		p, ok := s.d.Quota.policyBook().Lookup(quota.KindKey, k.ID, "")
		if !ok {
			return keyViewOf(k, nil)
		}
		return keyViewOf(k, &p)
	})
}

// liveKey loads a key in scope that is not revoked, answering itself otherwise.
func (s *Server) liveKey(c *gin.Context) (store.APIKey, *store.QuotaPolicy, bool) {
	k, lim, ok := s.keyInScope(c)
	if ok && k.RevokedAt != nil {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "key_revoked", "id", "The key is revoked; create a new one.")
		return k, lim, false
	}
	return k, lim, ok
}

func (s *Server) updateKey(c *gin.Context) {
	var b keyPatch
	if !decode(c, &b) {
		return
	}
	k, lim, ok := s.liveKey(c)
	if !ok {
		return
	}
	before := keyViewOf(k, lim)
	if !patchText(b.Name, &k.Name, func(v string) bool { return checkText(c, "name", v, 200, false) }) ||
		!patch(b.Models, &k.Models, modelsCheck(c)) || !patch(b.Metadata, &k.Metadata, metadataCheck(c)) ||
		!patchLimits(c, b.Limits, quota.KindKey, k.ID, &lim) {
		return
	}
	if b.ExpiresAt.Set { // null: never expires
		if !checkFuture(c, "expires_at", b.ExpiresAt.Val) {
			return
		}
		k.ExpiresAt = b.ExpiresAt.Val
	}
	if b.ResponseCache != nil {
		k.ResponseCache = *b.ResponseCache
	}
	// Only what the body changes is held against the tenant's bounds: a key made before the
	// tenant narrowed them can still be renamed (the gateway applies both allowlists anyway).
	var boundModels []string
	var boundLimits *store.QuotaPolicy
	if b.Models.Set {
		boundModels = k.Models
	}
	if b.Limits.Set {
		boundLimits = lim
	}
	if !s.withinTenant(c, k.TenantID, boundModels, boundLimits, limitsField) {
		return
	}
	ctx := c.Request.Context()
	if err := s.d.Store.UpdateKey(ctx, k); err != nil {
		if isNotFound(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "key_revoked", "id", "The key is revoked; create a new one.")
			return
		}
		s.internal(c, err)
		return
	}
	if b.Limits.Set {
		if err := s.putLimits(ctx, quota.KindKey, k.ID, lim); err != nil {
			s.internal(c, err)
			return
		}
	}
	s.answerKey(c, "key.update", before, "", nil)
}

// answerKey reads the key back, records the change and answers its view (with a new plaintext
// and the old secret's end after a rotation).
func (s *Server) answerKey(c *gin.Context, action string, before keyView, plain string, previousEnds *time.Time) {
	k, lim, ok := s.keyInScope(c)
	if !ok {
		return
	}
	v := keyViewOf(k, lim)
	v.PreviousKeyExpiresAt = previousEnds
	s.audit(c, action, k.ID, k.TenantID, before, v)
	v.Key = plain
	if eff, err := s.effectiveLimits(c.Request.Context(), k); err == nil {
		v.EffectiveLimits = eff // the change is made: a failed explanation does not fail it
	} else {
		s.d.Log.Warn("admin: computing a key's effective limits failed", "key_id", k.ID, "err", err)
	}
	c.JSON(http.StatusOK, v)
}

// rotateBody is the optional body of POST /admin/keys/{id}/rotate.
type rotateBody struct {
	// GraceSeconds is how long the old secret keeps working (default 86400, at most 30 days; 0
	// ends it at once).
	GraceSeconds *int64 `json:"grace_seconds"`
}

const maxGrace = 30 * 24 * 3600

func (s *Server) rotateKey(c *gin.Context) {
	var b rotateBody
	if !decodeOptional(c, &b) {
		return
	}
	grace := int64(86400)
	if b.GraceSeconds != nil {
		if *b.GraceSeconds < 0 || *b.GraceSeconds > maxGrace {
			invalid(c, "grace_seconds", "want 0 to "+strconv.Itoa(maxGrace)+" (30 days).")
			return
		}
		grace = *b.GraceSeconds
	}
	k, lim, ok := s.liveKey(c)
	if !ok {
		return
	}
	before := keyViewOf(k, lim)
	at := now()
	until := at.Add(time.Duration(grace) * time.Second)
	plain, hash, prefix := apikey.New()
	if err := s.d.Store.RotateKey(c.Request.Context(), k.ID, hash, prefix, at, until); err != nil {
		if isNotFound(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "key_revoked", "id", "The key is revoked; create a new one.")
			return
		}
		s.internal(c, err)
		return
	}
	s.answerKey(c, "key.rotate", before, plain, &until)
}

// revokeKey revokes at once; every replica stops accepting the key within its key-cache TTL.
// Revoking a revoked key changes nothing and answers the same.
func (s *Server) revokeKey(c *gin.Context) {
	k, lim, ok := s.keyInScope(c)
	if !ok {
		return
	}
	if k.RevokedAt != nil {
		c.JSON(http.StatusOK, keyViewOf(k, lim))
		return
	}
	if err := s.d.Store.RevokeKey(c.Request.Context(), k.ID, now()); err != nil {
		s.internal(c, err)
		return
	}
	s.answerKey(c, "key.revoke", keyViewOf(k, lim), "", nil)
}
