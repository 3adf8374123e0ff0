package admin_test

import (
	"testing"
)

// TestListPoliciesFilters: subject_type and subject_id of GET /admin/quota/policies each filter
// on their own, as well as together.
func TestListPoliciesFilters(t *testing.T) {
	s := newServer(t, backend{})
	c := s.client(t)
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "u1"})
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "u1", "name": "same id as the user"})
	c.Must(200, "PUT", "/admin/quota/policies/user/u1", map[string]any{"rpm": 5})
	c.Must(200, "PUT", "/admin/quota/policies/tenant/u1", map[string]any{"rpm": 50})
	c.Must(200, "PUT", "/admin/quota/policies/tenant/default", map[string]any{"rpm": 500})
	subjects := func(path string) string {
		return c.Must(200, "GET", path, nil).JSON(`data.#.subject_type`).String() + " " +
			c.Must(200, "GET", path, nil).JSON(`data.#.subject_id`).String()
	}
	for path, want := range map[string]string{
		"/admin/quota/policies":                                 `["tenant","tenant","user"] ["default","u1","u1"]`,
		"/admin/quota/policies?subject_type=tenant":             `["tenant","tenant"] ["default","u1"]`,
		"/admin/quota/policies?subject_id=u1":                   `["tenant","user"] ["u1","u1"]`,
		"/admin/quota/policies?subject_type=user&subject_id=u1": `["user"] ["u1"]`,
	} {
		if got := subjects(path); got != want {
			t.Errorf("GET %s: %s, want %s", path, got, want)
		}
	}
}
