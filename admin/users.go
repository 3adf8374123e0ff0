package admin

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/store"
)

// Users belong to one tenant for life; a scoped token manages the users of its tenant.

func (s *Server) routeUsers(a *gin.RouterGroup) {
	s.handle(a, http.MethodPost, "/users", write(areaUsers), s.createUser)
	s.handle(a, http.MethodGet, "/users", read(areaUsers), s.listUsers)
	s.handle(a, http.MethodGet, "/users/:id", read(areaUsers), s.getUser)
	s.handle(a, http.MethodPatch, "/users/:id", write(areaUsers), s.updateUser)
	s.handle(a, http.MethodDelete, "/users/:id", write(areaUsers), s.deleteUser)
}

type userView struct {
	ID         string            `json:"id"`
	TenantID   string            `json:"tenant_id"`
	Tier       string            `json:"tier"`
	ExternalID string            `json:"external_id"`
	Email      string            `json:"email"`
	Metadata   map[string]string `json:"metadata"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  *time.Time        `json:"updated_at"`
	DeletedAt  *time.Time        `json:"deleted_at"`
}

func userViewOf(u store.User) userView {
	return userView{ID: u.ID, TenantID: u.TenantID, Tier: u.Tier, ExternalID: u.ExternalID, Email: u.Email,
		Metadata: orEmpty(u.Metadata), CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, DeletedAt: u.DeletedAt}
}

// userCreate is the body of POST /admin/users.
type userCreate struct {
	ID         string            `json:"id"`
	TenantID   string            `json:"tenant_id"`
	Tier       string            `json:"tier"`
	ExternalID string            `json:"external_id"`
	Email      string            `json:"email"`
	Metadata   map[string]string `json:"metadata"`
}

// userPatch is the body of PATCH /admin/users/{id}. TenantID is there to refuse it by name.
type userPatch struct {
	TenantID   *string                     `json:"tenant_id"`
	Tier       *string                     `json:"tier"`
	ExternalID *string                     `json:"external_id"`
	Email      *string                     `json:"email"`
	Metadata   optional[map[string]string] `json:"metadata"`
}

// checkTier answers 400 for a tier the quota config does not define.
func (s *Server) checkTier(c *gin.Context, tier string) bool {
	if s.d.Quota.tierKnown(tier) {
		return true
	}
	var names []string
	for n := range s.d.Quota.Options.Tiers {
		names = append(names, n)
	}
	sort.Strings(names)
	invalid(c, "tier", strconv.Quote(tier)+" is not a configured tier ("+strings.Join(names, ", ")+").")
	return false
}

func (s *Server) createUser(c *gin.Context) {
	var b userCreate
	if !decode(c, &b) {
		return
	}
	if b.ID == "" {
		b.ID = "usr_" + strings.ReplaceAll(newID(), "-", "")
	}
	tenant, ok := scopedTenant(c, b.TenantID, "tenant_id")
	if !ok {
		return
	}
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	if b.Tier == "" {
		b.Tier = s.d.Quota.defaultTier()
	}
	if !checkID(c, "id", b.ID) || !checkID(c, "tenant_id", tenant) || !s.checkTier(c, b.Tier) ||
		!checkText(c, "external_id", b.ExternalID, 200, false) || !checkEmail(c, b.Email) || !checkMetadata(c, b.Metadata) {
		return
	}
	u := store.User{ID: b.ID, TenantID: tenant, Tier: b.Tier, ExternalID: b.ExternalID, Email: b.Email,
		Metadata: b.Metadata, CreatedAt: now()}
	if err := s.d.Store.CreateUser(c.Request.Context(), u); err != nil {
		switch {
		case isConflict(err) && s.othersUser(c, b.ID):
			// User ids are one namespace across tenants. A token scoped to a tenant gets the 404
			// every other route gives it for this user, not a 409 confirming that it exists.
			notFound(c, "user", "id")
		case isConflict(err):
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "user_exists", "id", "A user with that id, or with that external_id in the tenant, exists.")
		case isNotFound(err):
			invalid(c, "tenant_id", "no live tenant "+strconv.Quote(tenant)+".")
		default:
			s.internal(c, err)
		}
		return
	}
	v := userViewOf(u)
	s.audit(c, "user.create", u.ID, u.TenantID, nil, v)
	c.JSON(http.StatusCreated, v)
}

// othersUser reports whether id is a user the caller may not see (of another tenant than a scoped
// token's).
func (s *Server) othersUser(c *gin.Context, id string) bool {
	if who(c).Tenant == "" {
		return false
	}
	u, err := s.d.Store.GetUser(c.Request.Context(), id)
	return err == nil && !sees(c, u.TenantID)
}

// userInScope loads a user the caller may see, answering 404 itself otherwise.
func (s *Server) userInScope(c *gin.Context) (store.User, bool) {
	u, err := s.d.Store.GetUser(c.Request.Context(), c.Param("id"))
	if isNotFound(err) || (err == nil && !sees(c, u.TenantID)) {
		notFound(c, "user", "id")
		return u, false
	}
	if err != nil {
		s.internal(c, err)
		return u, false
	}
	return u, true
}

func (s *Server) getUser(c *gin.Context) {
	if u, ok := s.userInScope(c); ok {
		c.JSON(http.StatusOK, userViewOf(u))
	}
}

func (s *Server) listUsers(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	f := store.UserFilter{Tier: c.Query("tier"), ExternalID: c.Query("external_id"), Email: c.Query("email"),
		Search: c.Query("q"), IncludeDeleted: c.Query("include_deleted") == "true", Limit: limit + 1, Offset: offset}
	if f.TenantID, ok = scopedTenant(c, c.Query("tenant_id"), "tenant_id"); !ok {
		return
	}
	for name, v := range map[string]string{"tier": f.Tier, "external_id": f.ExternalID, "email": f.Email, "q": f.Search, "tenant_id": f.TenantID} {
		if !checkText(c, name, v, 254, false) {
			return
		}
	}
	us, err := s.d.Store.ListUsers(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, us, limit, offset, userViewOf)
}

func (s *Server) updateUser(c *gin.Context) {
	var b userPatch
	if !decode(c, &b) {
		return
	}
	u, ok := s.userInScope(c)
	if !ok {
		return
	}
	if b.TenantID != nil && *b.TenantID != u.TenantID {
		invalid(c, "tenant_id", "a user cannot move to another tenant; create a new user there.")
		return
	}
	if u.DeletedAt != nil {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "user_deleted", "id", "The user is deleted.")
		return
	}
	before := userViewOf(u)
	if !patchText(b.Tier, &u.Tier, func(v string) bool { return s.checkTier(c, v) }) ||
		!patchText(b.ExternalID, &u.ExternalID, func(v string) bool { return checkText(c, "external_id", v, 200, false) }) ||
		!patchText(b.Email, &u.Email, func(v string) bool { return checkEmail(c, v) }) ||
		!patch(b.Metadata, &u.Metadata, metadataCheck(c)) {
		return
	}
	ctx := c.Request.Context()
	if err := s.d.Store.UpdateUser(ctx, u); err != nil {
		if isConflict(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "user_exists", "external_id", "external_id: another user of the tenant has it.")
			return
		}
		s.internal(c, err)
		return
	}
	readBack(s, c, "user.update", u.ID, u.TenantID, before, s.d.Store.GetUser, userViewOf)
}

// deleteUser soft-deletes the user and revokes its keys at once; its usage history stays.
func (s *Server) deleteUser(c *gin.Context) {
	u, ok := s.userInScope(c)
	if !ok {
		return
	}
	if u.DeletedAt != nil {
		notFound(c, "user", "id")
		return
	}
	ctx := c.Request.Context()
	if err := s.d.Store.DeleteUser(ctx, u.ID, now()); err != nil {
		if isNotFound(err) {
			notFound(c, "user", "id")
			return
		}
		s.internal(c, err)
		return
	}
	readBack(s, c, "user.delete", u.ID, u.TenantID, userViewOf(u), s.d.Store.GetUser, userViewOf)
}
