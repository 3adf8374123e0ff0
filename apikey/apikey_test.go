package apikey

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		plain, hash, prefix := New()
		if !strings.HasPrefix(plain, Prefix) || len(plain) != len(Prefix)+BodyLen || !Plausible(plain) {
			t.Fatalf("bad key %q", plain)
		}
		if hash != Hash(plain) || len(hash) != 64 || !strings.HasPrefix(plain, prefix) || len(prefix) != DisplayLen {
			t.Fatalf("hash %q prefix %q of %q", hash, prefix, plain)
		}
		if seen[plain] {
			t.Fatal("duplicate key")
		}
		seen[plain] = true
	}
}

// TestHashIsStable: stored hashes must keep matching the keys already issued.
func TestHashIsStable(t *testing.T) {
	if got := Hash("sk-lg-abc"); got != "3cc89beabda6693a16a6dbef9cfca545cdad6642612d0e04d240b71c83663121" {
		t.Fatalf("Hash = %q", got)
	}
}

func TestPlausible(t *testing.T) {
	for k, want := range map[string]bool{
		"sk-lg-abcdefgh": true, "short": false, strings.Repeat("a", 257): false, "has space1": false,
		"sk_lg.a-B_9": true, "not a key; DROP TABLE api_keys": false,
	} {
		if got := Plausible(k); got != want {
			t.Errorf("Plausible(%q) = %v, want %v", k, got, want)
		}
	}
}
