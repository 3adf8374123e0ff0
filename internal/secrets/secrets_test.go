package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpenRotate(t *testing.T) {
	old, err := New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal("sk-secret-value", "provider:a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "sk-secret-value") || !strings.HasPrefix(sealed, "v1:"+KeyID(key(1))+":") {
		t.Fatalf("sealed = %q", sealed)
	}
	again, _ := old.Seal("sk-secret-value", "provider:a")
	if again == sealed {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	if got, err := old.Open(sealed, "provider:a"); err != nil || got != "sk-secret-value" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := old.Open(sealed, "provider:b"); err == nil {
		t.Error("a value opened in another context")
	}
	// Rotation: the new key seals, the old one still opens.
	rotated, err := New(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed, "provider:a"); err != nil || got != "sk-secret-value" {
		t.Fatalf("rotated Open(old value) = %q, %v", got, err)
	}
	resealed, _ := rotated.Seal("sk-secret-value", "provider:a")
	if id, _ := SealedBy(resealed); id != KeyID(key(2)) || id != rotated.CurrentKeyID() {
		t.Errorf("resealed by %s, want the new key %s", id, KeyID(key(2)))
	}
	// Once the old key is dropped, old values do not open; new ones do.
	newOnly, _ := New(key(2))
	if _, err := newOnly.Open(sealed, "provider:a"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open(old value) without the old key: err = %v, want ErrUnknownKey", err)
	}
	if got, err := newOnly.Open(resealed, "provider:a"); err != nil || got != "sk-secret-value" {
		t.Errorf("Open(resealed) = %q, %v", got, err)
	}
	// Tampering is detected.
	raw := []byte(sealed)
	raw[len(raw)-3] ^= 1
	if _, err := old.Open(string(raw), "provider:a"); err == nil {
		t.Error("an altered value opened")
	}
	var none *Keyring
	if _, err := none.Seal("x", "y"); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil keyring Seal: err = %v, want ErrNoKey", err)
	}
}

func TestParseKey(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(key(7))
	if k, err := ParseKey(" " + good + "\n"); err != nil || !bytes.Equal(k, key(7)) {
		t.Errorf("ParseKey(good) = %x, %v", k, err)
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(key(1)[:16])} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q): no error", bad)
		}
	}
	if Fingerprint("abc") != "ba7816bf" {
		t.Errorf("Fingerprint(abc) = %s", Fingerprint("abc"))
	}
}
