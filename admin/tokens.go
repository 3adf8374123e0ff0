package admin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/store"
)

// Admin tokens: made by an admin, stored as SHA-256, shown once. A token scoped to a tenant
// makes only tokens scoped to that tenant. Revocation is seen by every replica within tokenTTL.

func (s *Server) routeTokens(a *gin.RouterGroup) {
	s.handle(a, http.MethodPost, "/tokens", write(areaTokens), s.createToken)
	s.handle(a, http.MethodGet, "/tokens", read(areaTokens), s.listTokens)
	s.handle(a, http.MethodGet, "/tokens/:id", read(areaTokens), s.getToken)
	s.handle(a, http.MethodDelete, "/tokens/:id", write(areaTokens), s.revokeToken)
}

type tokenView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Role       string     `json:"role"`
	TenantID   string     `json:"tenant_id"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// Token is the plaintext, present only in the answer to create.
	Token string `json:"token,omitempty"`
}

func tokenViewOf(t store.AdminToken) tokenView {
	return tokenView{ID: t.ID, Name: t.Name, Prefix: t.Prefix, Role: t.Role, TenantID: t.TenantID, CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt}
}

// tokenCreate is the body of POST /admin/tokens.
type tokenCreate struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	TenantID  string     `json:"tenant_id"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (s *Server) createToken(c *gin.Context) {
	var b tokenCreate
	if !decode(c, &b) {
		return
	}
	if !checkText(c, "name", b.Name, 200, true) || !checkFuture(c, "expires_at", b.ExpiresAt) {
		return
	}
	if store.ValidRole(b.Role) != nil {
		invalid(c, "role", "want admin, viewer or billing.")
		return
	}
	tenant, ok := scopedTenant(c, b.TenantID, "tenant_id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if tenant != "" {
		if !checkID(c, "tenant_id", tenant) {
			return
		}
		t, err := s.d.Store.GetTenant(ctx, tenant)
		if isNotFound(err) || (err == nil && t.DeletedAt != nil) {
			invalid(c, "tenant_id", "no live tenant "+strconv.Quote(tenant)+".")
			return
		}
		if err != nil {
			s.internal(c, err)
			return
		}
	}
	plain, hash, prefix := newAdminToken()
	t := store.AdminToken{ID: "tok_" + strings.ReplaceAll(newID(), "-", ""), Name: b.Name, Prefix: prefix, Role: b.Role,
		TenantID: tenant, CreatedBy: who(c).Actor, CreatedAt: now(), ExpiresAt: b.ExpiresAt}
	if err := s.d.Store.CreateAdminToken(ctx, t, hash); err != nil {
		if isNotFound(err) {
			invalid(c, "tenant_id", "no live tenant "+strconv.Quote(tenant)+".")
			return
		}
		s.internal(c, err)
		return
	}
	v := tokenViewOf(t)
	s.audit(c, "token.create", t.ID, t.TenantID, nil, v)
	v.Token = plain
	c.JSON(http.StatusCreated, v)
}

// tokenInScope loads a token the caller may see, answering 404 itself otherwise.
func (s *Server) tokenInScope(c *gin.Context) (store.AdminToken, bool) {
	t, err := s.d.Store.GetAdminToken(c.Request.Context(), c.Param("id"))
	if isNotFound(err) || (err == nil && !sees(c, t.TenantID)) {
		notFound(c, "token", "id")
		return t, false
	}
	if err != nil {
		s.internal(c, err)
		return t, false
	}
	return t, true
}

func (s *Server) getToken(c *gin.Context) {
	if t, ok := s.tokenInScope(c); ok {
		c.JSON(http.StatusOK, tokenViewOf(t))
	}
}

func (s *Server) listTokens(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.AdminTokenFilter{Role: c.Query("role"), Name: c.Query("name"), Limit: limit + 1, Offset: offset}
	if f.Role != "" && store.ValidRole(f.Role) != nil {
		invalid(c, "role", "want admin, viewer or billing.")
		return
	}
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return
	}
	if !checkText(c, "name", f.Name, 200, false) || !checkText(c, "tenant_id", f.TenantID, 200, false) {
		return
	}
	ts, err := s.d.Store.ListAdminTokens(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, ts, limit, offset, tokenViewOf)
}

// revokeToken revokes a token; revoking a revoked one changes nothing.
func (s *Server) revokeToken(c *gin.Context) {
	t, ok := s.tokenInScope(c)
	if !ok {
		return
	}
	if t.RevokedAt != nil {
		c.JSON(http.StatusOK, tokenViewOf(t))
		return
	}
	ctx := c.Request.Context()
	if err := s.d.Store.RevokeAdminToken(ctx, t.ID, now()); err != nil {
		s.internal(c, err)
		return
	}
	s.tokens.forget()
	// Its console sessions end now (every request through one checks the token too).
	if _, err := s.d.Store.DeleteConsoleSessionsOf(ctx, t.ID); err != nil {
		s.d.Log.Warn("admin token revoked, but deleting its console sessions failed", "token", t.ID, "err", err)
	}
	readBack(s, c, "token.revoke", t.ID, t.TenantID, tokenViewOf(t), s.d.Store.GetAdminToken, tokenViewOf)
}

// auditEntryView is one admin_audit row.
type auditEntryView struct {
	ID        int64     `json:"id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	TenantID  string    `json:"tenant_id"`
	Before    rawJSON   `json:"before"`
	After     rawJSON   `json:"after"`
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"`
}

// rawJSON embeds a stored JSON document as is (null when absent).
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

func auditEntryViewOf(e store.AdminAuditEntry) auditEntryView {
	return auditEntryView{ID: e.ID, Actor: e.Actor, Action: e.Action, Target: e.Target, TenantID: e.TenantID,
		Before: e.Before, After: e.After, RequestID: e.RequestID, At: e.At}
}

// listAuditLog is GET /admin/audit-log: admin mutations, newest first. A scoped token sees its
// tenant's.
func (s *Server) listAuditLog(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.AdminAuditFilter{Actor: c.Query("actor"), Action: c.Query("action"), Target: c.Query("target"),
		Limit: limit + 1, Offset: offset}
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return
	}
	if f.From, ok = timeParam(c, "from"); !ok {
		return
	}
	if f.To, ok = timeParam(c, "to"); !ok {
		return
	}
	for name, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target, "tenant_id": f.TenantID} {
		if !checkText(c, name, v, 300, false) {
			return
		}
	}
	es, err := s.d.Store.ListAdminAudit(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, es, limit, offset, auditEntryViewOf)
}
