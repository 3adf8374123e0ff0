package migrations

import (
	"regexp"
	"slices"
	"testing"
)

// TestDialectsAgree: both dialects load, are numbered 1…n, and create the same tables, so the two
// stores cannot drift apart in what they can hold.
func TestDialectsAgree(t *testing.T) {
	lite, err := SQLite()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := Postgres()
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL ones", len(lite), len(pg))
	}
	createTable := regexp.MustCompile(`(?m)^CREATE TABLE (\w+) \(`)
	tables := func(ms []Migration) []string {
		var out []string
		for _, m := range ms {
			for _, match := range createTable.FindAllStringSubmatch(m.SQL, -1) {
				out = append(out, match[1])
			}
		}
		slices.Sort(out)
		return out
	}
	if l, p := tables(lite), tables(pg); !slices.Equal(l, p) {
		t.Errorf("tables differ:\n sqlite   %v\n postgres %v", l, p)
	}
	for _, want := range []string{"tenants", "users", "api_keys", "api_key_secrets", "usage_records",
		"model_pricing", "quota_policies", "billing_record", "credit_accounts", "credit_ledger",
		"admin_tokens", "admin_audit"} {
		if !slices.Contains(tables(pg), want) {
			t.Errorf("no migration creates %s", want)
		}
	}
}
