package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Shared request handling of the resource endpoints: optional fields of PATCH bodies, paging,
// list answers, and the field checks every resource applies the same way.

// optional is a PATCH field: Set when the body names it (null included), Val nil for null.
type optional[T any] struct {
	Set bool
	Val *T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Val = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		return err
	}
	o.Val = &v
	return nil
}

// patch applies a PATCH field that can be cleared: absent keeps *dst, null clears it, and a value
// goes through check (which answers 400 itself and may normalise it) into *dst.
func patch[T any](o optional[T], dst *T, check func(T) (T, bool)) bool {
	if !o.Set {
		return true
	}
	var zero T
	*dst = zero
	if o.Val == nil {
		return true
	}
	v, ok := check(*o.Val)
	if ok {
		*dst = v
	}
	return ok
}

// patchText applies a PATCH field that cannot be cleared (absent or null keeps *dst).
func patchText(v *string, dst *string, check func(string) bool) bool {
	if v == nil {
		return true
	}
	if !check(*v) {
		return false
	}
	*dst = *v
	return true
}

// modelsCheck and metadataCheck are checkModels and checkMetadata as patch checks.
func modelsCheck(c *gin.Context) func([]string) ([]string, bool) {
	return func(m []string) ([]string, bool) { return checkModels(c, m) }
}

func metadataCheck(c *gin.Context) func(map[string]string) (map[string]string, bool) {
	return func(m map[string]string) (map[string]string, bool) { return m, checkMetadata(c, m) }
}

// pageParams reads limit (1..1000, default 100) and offset.
func pageParams(c *gin.Context) (limit, offset int, ok bool) {
	if limit, ok = intParam(c, "limit", 100, 1, 1000); !ok {
		return 0, 0, false
	}
	offset, ok = intParam(c, "offset", 0, 0, 1<<30)
	return limit, offset, ok
}

// writeList answers one page of a list. items were fetched with limit+1, so one more than the
// page says there is a next page.
func writeList[T, V any](c *gin.Context, items []T, limit, offset int, view func(T) V) {
	c.JSON(http.StatusOK, listBody(items, limit, offset, view))
}

// listBody is writeList's answer, for lists that add fields of their own.
func listBody[T, V any](items []T, limit, offset int, view func(T) V) gin.H {
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	out := make([]V, 0, len(items))
	for _, it := range items {
		out = append(out, view(it))
	}
	var next any
	if more {
		next = offset + limit
	}
	return gin.H{"object": "list", "data": out, "limit": limit, "offset": offset, "has_more": more, "next_offset": next}
}

// window is the page of an in-memory list that writeList expects: up to limit+1 items from offset.
func window[T any](items []T, limit, offset int) []T {
	if offset >= len(items) {
		return nil
	}
	return items[offset:min(len(items), offset+limit+1)]
}

// readBack reads a changed object back from the store, records the change in the audit log and
// answers the object's view (200).
func readBack[T, V any](s *Server, c *gin.Context, action, id, tenant string, before V,
	get func(context.Context, string) (T, error), view func(T) V) {
	t, err := get(c.Request.Context(), id)
	if err != nil {
		s.internal(c, err)
		return
	}
	v := view(t)
	s.audit(c, action, id, tenant, before, v)
	c.JSON(http.StatusOK, v)
}

// invalid answers a 400 naming the field.
func invalid(c *gin.Context, field, msg string) {
	fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", field, field+": "+msg)
}

// idChars are what a client-chosen id (tenant, user) may contain.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("._:@-", ch) >= 0) {
			return false
		}
	}
	return true
}

// checkID checks a client-chosen id, answering 400 itself.
func checkID(c *gin.Context, field, id string) bool {
	if !validID(id) {
		invalid(c, field, "want 1 to 128 characters of letters, digits and . _ : @ -.")
		return false
	}
	return true
}

// checkText checks free text: valid UTF-8, no control characters, at most max bytes.
func checkText(c *gin.Context, field, s string, max int, required bool) bool {
	switch {
	case required && strings.TrimSpace(s) == "":
		invalid(c, field, "must not be empty.")
	case len(s) > max:
		invalid(c, field, "at most "+strconv.Itoa(max)+" bytes.")
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		invalid(c, field, "must be UTF-8 text without control characters.")
	default:
		return true
	}
	return false
}

// checkEmail is deliberately plain: one '@' with text on both sides, no spaces.
func checkEmail(c *gin.Context, email string) bool {
	if email == "" {
		return true
	}
	at := strings.IndexByte(email, '@')
	if len(email) > 254 || at <= 0 || at != strings.LastIndexByte(email, '@') || at == len(email)-1 ||
		strings.ContainsAny(email, " \t\r\n<>\"(),;") || !checkText(c, "email", email, 254, false) {
		if !c.Writer.Written() {
			invalid(c, "email", "want an address such as name@example.com.")
		}
		return false
	}
	return true
}

// checkModels checks an allowlist and returns it without duplicates (nil for empty).
func checkModels(c *gin.Context, models []string) ([]string, bool) {
	if len(models) > 1000 {
		invalid(c, "models", "at most 1000 models.")
		return nil, false
	}
	seen := make(map[string]bool, len(models))
	var out []string
	for i, m := range models {
		if m == "" || len(m) > 200 || !checkText(c, "models["+strconv.Itoa(i)+"]", m, 200, true) {
			if !c.Writer.Written() {
				invalid(c, "models["+strconv.Itoa(i)+"]", "must be a non-empty model name of at most 200 characters.")
			}
			return nil, false
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, true
}

// checkMetadata bounds metadata: at most 50 keys of 1..64 bytes, values of at most 500 bytes.
func checkMetadata(c *gin.Context, md map[string]string) bool {
	if len(md) > 50 {
		invalid(c, "metadata", "at most 50 keys.")
		return false
	}
	for k, v := range md {
		if k == "" || len(k) > 64 {
			invalid(c, "metadata", "keys must have 1 to 64 bytes.")
			return false
		}
		if !checkText(c, "metadata."+k, k, 64, true) || !checkText(c, "metadata."+k, v, 500, false) {
			return false
		}
	}
	return true
}

// checkFuture checks an optional expiry.
func checkFuture(c *gin.Context, field string, t *time.Time) bool {
	if t != nil && !t.After(time.Now()) {
		invalid(c, field, "must be in the future.")
		return false
	}
	return true
}

// orEmpty keeps views' maps and lists non-null.
func orEmpty[M ~map[string]string](m M) M {
	if m == nil {
		return M{}
	}
	return m
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// now is the store's time resolution.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// notFound answers 404 for a resource.
func notFound(c *gin.Context, what, param string) {
	fail(c, http.StatusNotFound, api.TypeNotFound, strings.ReplaceAll(what, " ", "_")+"_not_found", param, "No "+what+" with that id.")
}

// subjectTenant returns the tenant a quota or credit subject belongs to (ErrNotFound when the
// user, key or tenant does not exist; soft-deleted ones do).
func (s *Server) subjectTenant(ctx context.Context, typ quota.Kind, id string) (string, error) {
	switch typ {
	case quota.KindTenant:
		_, err := s.d.Store.GetTenant(ctx, id)
		return id, err
	case quota.KindUser:
		u, err := s.d.Store.GetUser(ctx, id)
		return u.TenantID, err
	case quota.KindKey:
		k, err := s.d.Store.GetKey(ctx, id)
		return k.TenantID, err
	}
	return "", store.ErrNotFound
}

// subjectInScope answers 404 itself (and returns false) when a scoped token asks about a subject
// outside its tenant, or one that does not exist. Unscoped tokens may name subjects that do not
// exist yet (a policy set ahead of the user), and cost no lookup.
func (s *Server) subjectInScope(c *gin.Context, typ quota.Kind, id, param string) bool {
	if who(c).Tenant == "" {
		return true
	}
	_, _, ok := s.scopedSubject(c, typ, id, param)
	return ok
}

// scopedSubject returns the tenant of a subject and whether it exists, answering itself (404, or
// 500) when the caller may not see it.
func (s *Server) scopedSubject(c *gin.Context, typ quota.Kind, id, param string) (tenant string, found, ok bool) {
	t, err := s.subjectTenant(c.Request.Context(), typ, id)
	if err != nil && !isNotFound(err) {
		s.internal(c, err)
		return "", false, false
	}
	found = err == nil
	if scope := who(c).Tenant; scope != "" && (!found || t != scope) {
		notFound(c, string(typ), param)
		return "", false, false
	}
	return t, found, true
}

// AllowUnknownSubject is the query flag that lets a quota policy or a credit movement name a
// user, key or tenant that does not exist (yet): a policy set ahead of the user it is for, or an
// account for an id another system owns. Without it such a write is refused, so a typo cannot
// quietly make a policy or a credit account for nobody.
const AllowUnknownSubject = "allow_unknown_subject"

// knownSubject checks that a write may name the subject: one the caller may see that exists
// (soft-deleted ones included: their policies and credits stay manageable), or, when the query
// says allow_unknown_subject=true, one that does not exist at all. A tenant-scoped token never
// reaches an unknown subject: it belongs to no tenant. It answers itself (400, 404) when not, and
// returns the subject's tenant and whether it exists.
func (s *Server) knownSubject(c *gin.Context, typ quota.Kind, id, param string) (tenant string, found, ok bool) {
	allow := false
	if v := c.Query(AllowUnknownSubject); v != "" {
		var err error
		if allow, err = strconv.ParseBool(v); err != nil {
			invalid(c, AllowUnknownSubject, "want true or false.")
			return "", false, false
		}
	}
	tenant, found, ok = s.scopedSubject(c, typ, id, param)
	if ok && !found && !allow {
		fail(c, http.StatusNotFound, api.TypeNotFound, string(typ)+"_not_found", param,
			"No "+string(typ)+" "+strconv.Quote(id)+". Check the id, or add ?"+AllowUnknownSubject+"=true (CLI: --allow-unknown-subject) to write for a "+string(typ)+" that does not exist yet.")
		return "", false, false
	}
	return tenant, found, ok
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }
