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
	// The tables that exist after every migration: created, less those dropped, under their last
	// name (SQLite rebuilds a table to change its key: create a new one, copy, drop, rename).
	statement := regexp.MustCompile(`(?m)^(?:CREATE TABLE (\w+) \(|DROP TABLE (\w+);|ALTER TABLE (\w+) RENAME TO (\w+);)`)
	tables := func(ms []Migration) []string {
		have := map[string]bool{}
		for _, m := range ms {
			for _, match := range statement.FindAllStringSubmatch(m.SQL, -1) {
				switch {
				case match[1] != "":
					have[match[1]] = true
				case match[2] != "":
					delete(have, match[2])
				default:
					delete(have, match[3])
					have[match[4]] = true
				}
			}
		}
		var out []string
		for name := range have {
			out = append(out, name)
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
