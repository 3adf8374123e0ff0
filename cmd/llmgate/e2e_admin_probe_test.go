package main

import "testing"

// TestScopedTokenCannotProbeUserIDs: creating a user whose id belongs to another tenant tells a
// token scoped to a tenant no more than any other route does (the 404 of a user it cannot see),
// where a 409 used to confirm that the user exists; an unscoped token still gets the 409, and so
// does a scoped one for a user of its own tenant.
func TestScopedTokenCannotProbeUserIDs(t *testing.T) {
	e := newEnv(t)
	c := newAdmClient(t, e)
	for _, id := range []string{"probe-a", "probe-b"} {
		c.must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": id})
	}
	c.must(201, "POST", "/admin/users", map[string]any{"id": "ua", "tenant_id": "probe-a"})
	c.must(201, "POST", "/admin/users", map[string]any{"id": "ub", "tenant_id": "probe-b"})
	sa := c.as(c.must(201, "POST", "/admin/tokens", map[string]any{"name": "sa", "role": "admin", "tenant_id": "probe-a"}).JSON("token").String())

	unseen := sa.refused(404, "id", "GET", "/admin/users/no-such-user", nil)
	other := sa.refused(404, "id", "POST", "/admin/users", map[string]any{"id": "ub"})
	if a, b := unseen.JSON("error").Raw, other.JSON("error").Raw; a != b {
		t.Errorf("a user of another tenant: %s; a user that does not exist: %s", b, a)
	}
	sa.refused(404, "user_id", "POST", "/admin/keys", map[string]any{"name": "k", "user_id": "ub"})
	sa.refused(409, "id", "POST", "/admin/users", map[string]any{"id": "ua"})
	c.refused(409, "id", "POST", "/admin/users", map[string]any{"id": "ub"})
	if u := c.must(200, "GET", "/admin/users/ub", nil); u.JSON("tenant_id").String() != "probe-b" {
		t.Errorf("ub after the scoped attempts: %s", u.Body)
	}
}
