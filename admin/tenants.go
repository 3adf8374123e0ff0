package admin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Tenants: only an unscoped token creates, changes or deletes them (a tenant's models and limits
// bound everything inside it); a scoped token sees its own.

func (s *Server) routeTenants(a *gin.RouterGroup) {
	s.handle(a, http.MethodPost, "/tenants", global(areaTenants), s.createTenant)
	s.handle(a, http.MethodGet, "/tenants", read(areaTenants), s.listTenants)
	s.handle(a, http.MethodGet, "/tenants/:id", read(areaTenants), s.getTenant)
	s.handle(a, http.MethodPatch, "/tenants/:id", global(areaTenants), s.updateTenant)
	s.handle(a, http.MethodDelete, "/tenants/:id", global(areaTenants), s.deleteTenant)
}

type tenantView struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Models    []string          `json:"models"`
	Limits    any               `json:"limits"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt *time.Time        `json:"updated_at"`
	DeletedAt *time.Time        `json:"deleted_at"`
	// ResponseCache: every key of the tenant goes through the response cache.
	ResponseCache bool `json:"response_cache"`
}

func tenantViewOf(t store.Tenant, limits *store.QuotaPolicy) tenantView {
	return tenantView{ID: t.ID, Name: t.Name, Models: orNone(t.Models), Limits: limitsView(limits),
		Metadata: orEmpty(t.Metadata), CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, DeletedAt: t.DeletedAt,
		ResponseCache: t.ResponseCache}
}

// tenantCreate is the body of POST /admin/tenants.
type tenantCreate struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Models   []string          `json:"models"`
	Limits   *policyBody       `json:"limits"`
	Metadata map[string]string `json:"metadata"`
	// ResponseCache opts every key of the tenant in to the response cache.
	ResponseCache bool `json:"response_cache"`
}

// tenantPatch is the body of PATCH /admin/tenants/{id}: named fields replace, null clears.
type tenantPatch struct {
	Name     *string                     `json:"name"`
	Models   optional[[]string]          `json:"models"`
	Limits   optional[policyBody]        `json:"limits"`
	Metadata optional[map[string]string] `json:"metadata"`
	// ResponseCache turns the tenant's response cache opt-in on or off.
	ResponseCache *bool `json:"response_cache"`
}

func (s *Server) createTenant(c *gin.Context) {
	var b tenantCreate
	if !decode(c, &b) {
		return
	}
	if b.ID == "" {
		b.ID = "ten_" + strings.ReplaceAll(newID(), "-", "")
	}
	if !checkID(c, "id", b.ID) || !checkText(c, "name", b.Name, 200, true) || !checkMetadata(c, b.Metadata) {
		return
	}
	models, ok := checkModels(c, b.Models)
	if !ok {
		return
	}
	var lim *store.QuotaPolicy
	if b.Limits != nil {
		p, ok := policyOf(c, "limits.", *b.Limits, quota.KindTenant, b.ID, "")
		if !ok {
			return
		}
		lim = &p
	}
	ctx := c.Request.Context()
	exists := func() {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "tenant_exists", "id", "id: tenant "+strconv.Quote(b.ID)+" exists.")
	}
	if _, err := s.d.Store.GetTenant(ctx, b.ID); !isNotFound(err) {
		if err == nil {
			exists()
		} else {
			s.internal(c, err)
		}
		return
	}
	// The limits go in first: a tenant never exists, even for a moment, without them.
	if err := s.putLimits(ctx, quota.KindTenant, b.ID, lim); err != nil {
		s.internal(c, err)
		return
	}
	t := store.Tenant{ID: b.ID, Name: b.Name, Models: models, Metadata: b.Metadata, CreatedAt: now(), ResponseCache: b.ResponseCache}
	if err := s.d.Store.CreateTenant(ctx, t); err != nil {
		if isConflict(err) {
			exists()
			return
		}
		s.internal(c, err)
		return
	}
	v := tenantViewOf(t, lim)
	s.audit(c, "tenant.create", t.ID, t.ID, nil, v)
	c.JSON(http.StatusCreated, v)
}

// tenantInScope loads a tenant the caller may see, answering 404 itself otherwise.
func (s *Server) tenantInScope(c *gin.Context) (store.Tenant, *store.QuotaPolicy, bool) {
	id := c.Param("id")
	if !sees(c, id) {
		notFound(c, "tenant", "id")
		return store.Tenant{}, nil, false
	}
	t, err := s.d.Store.GetTenant(c.Request.Context(), id)
	if isNotFound(err) {
		notFound(c, "tenant", "id")
		return t, nil, false
	}
	if err != nil {
		s.internal(c, err)
		return t, nil, false
	}
	lim, err := s.modelLess(c.Request.Context(), quota.KindTenant, id)
	if err != nil {
		s.internal(c, err)
		return t, nil, false
	}
	return t, lim, true
}

func (s *Server) getTenant(c *gin.Context) {
	if t, lim, ok := s.tenantInScope(c); ok {
		c.JSON(http.StatusOK, tenantViewOf(t, lim))
	}
}

func (s *Server) listTenants(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.TenantFilter{Search: c.Query("q"), IncludeDeleted: c.Query("include_deleted") == "true", Limit: limit + 1, Offset: offset}
	if !checkText(c, "q", f.Search, 200, false) {
		return
	}
	var ts []store.Tenant
	var err error
	if scope := who(c).Tenant; scope != "" {
		// A scoped token's list is its own tenant, when it matches the filter.
		var t store.Tenant
		t, err = s.d.Store.GetTenant(c.Request.Context(), scope)
		q := strings.ToLower(f.Search)
		if err == nil && offset == 0 && (t.DeletedAt == nil || f.IncludeDeleted) &&
			(strings.Contains(strings.ToLower(t.ID), q) || strings.Contains(strings.ToLower(t.Name), q)) {
			ts = []store.Tenant{t}
		}
		if isNotFound(err) {
			err = nil
		}
	} else {
		ts, err = s.d.Store.ListTenants(c.Request.Context(), f)
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, ts, limit, offset, func(t store.Tenant) tenantView {
		p, ok := s.d.Quota.policyBook().Lookup(quota.KindTenant, t.ID, "")
		if !ok {
			return tenantViewOf(t, nil)
		}
		return tenantViewOf(t, &p)
	})
}

func (s *Server) updateTenant(c *gin.Context) {
	var b tenantPatch
	if !decode(c, &b) {
		return
	}
	t, lim, ok := s.tenantInScope(c)
	if !ok {
		return
	}
	if t.DeletedAt != nil {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "tenant_deleted", "id", "The tenant is deleted.")
		return
	}
	before := tenantViewOf(t, lim)
	if !patchText(b.Name, &t.Name, func(v string) bool { return checkText(c, "name", v, 200, true) }) ||
		!patch(b.Models, &t.Models, modelsCheck(c)) || !patch(b.Metadata, &t.Metadata, metadataCheck(c)) ||
		!patchLimits(c, b.Limits, quota.KindTenant, t.ID, &lim) {
		return
	}
	if b.ResponseCache != nil {
		t.ResponseCache = *b.ResponseCache
	}
	ctx := c.Request.Context()
	if err := s.d.Store.UpdateTenant(ctx, t); err != nil {
		s.internal(c, err)
		return
	}
	if b.Limits.Set {
		if err := s.putLimits(ctx, quota.KindTenant, t.ID, lim); err != nil {
			s.internal(c, err)
			return
		}
	}
	readBack(s, c, "tenant.update", t.ID, t.ID, before, s.d.Store.GetTenant, withLimits(lim))
}

// withLimits is tenantViewOf with the tenant's limits.
func withLimits(lim *store.QuotaPolicy) func(store.Tenant) tenantView {
	return func(t store.Tenant) tenantView { return tenantViewOf(t, lim) }
}

// deleteTenant soft-deletes a tenant with no live users or keys left; its usage history stays.
func (s *Server) deleteTenant(c *gin.Context) {
	t, lim, ok := s.tenantInScope(c)
	if !ok {
		return
	}
	if t.DeletedAt != nil {
		notFound(c, "tenant", "id")
		return
	}
	ctx := c.Request.Context()
	if err := s.d.Store.DeleteTenant(ctx, t.ID, now()); err != nil {
		if isConflict(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "tenant_in_use", "id",
				"The tenant cannot be deleted: it is the default tenant, or it still has users or keys that are not deleted or revoked.")
			return
		}
		if isNotFound(err) {
			notFound(c, "tenant", "id")
			return
		}
		s.internal(c, err)
		return
	}
	// Admin tokens scoped to the tenant end with it.
	toks, err := s.d.Store.ListAdminTokens(ctx, store.AdminTokenFilter{TenantID: t.ID, Limit: 1000})
	if err != nil {
		s.internal(c, err)
		return
	}
	for _, tok := range toks {
		if tok.RevokedAt != nil {
			continue
		}
		if err := s.d.Store.RevokeAdminToken(ctx, tok.ID, now()); err != nil {
			s.internal(c, err)
			return
		}
		revoked := tok
		revoked.RevokedAt = new(time.Time)
		*revoked.RevokedAt = now()
		s.audit(c, "token.revoke", tok.ID, t.ID, tokenViewOf(tok), tokenViewOf(revoked))
	}
	s.tokens.forget()
	readBack(s, c, "tenant.delete", t.ID, t.ID, tenantViewOf(t, lim), s.d.Store.GetTenant, withLimits(lim))
}
