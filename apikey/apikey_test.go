package apikey

import (
	"crypto/sha256"
	"encoding/hex"
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

// TestAppendHashIsHash: the buffer-filling form spells the same hash as Hash, on both sides of the
// length it hashes from the stack.
func TestAppendHashIsHash(t *testing.T) {
	for _, k := range []string{"", "sk-lg-abc", strings.Repeat("k", 256), strings.Repeat("k", 257)} {
		sum := sha256.Sum256([]byte(k))
		want := hex.EncodeToString(sum[:])
		if got := string(AppendHash([]byte("x"), k)); got != "x"+want {
			t.Errorf("AppendHash of %d bytes = %q, want x%s", len(k), got, want)
		}
		if got := Hash(k); got != want {
			t.Errorf("Hash of %d bytes = %q, want %s", len(k), got, want)
		}
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
