// Package secrets seals provider credentials and webhook signing secrets for the store with
// AES-256-GCM (crypto/cipher: an authenticated cipher, so a tampered or misplaced value fails to
// open rather than decrypting to garbage). A Keyring has one current key, which seals, and any
// number of previous keys, which still open what they sealed: rotating the key is adding a new
// current key, keeping the old one as previous until every value is sealed again (Reseal), then
// dropping it.
//
// A sealed value is "v1:<key id>:<base64 of nonce and ciphertext>", where the key id is the first
// 8 hex digits of the key's SHA-256: it says which key opens the value without revealing it.
// Every value is bound to a context string (the provider's name, the webhook's id), so a sealed
// value copied into another row does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// version prefixes every sealed value, so a later format can be told apart.
const version = "v1"

// ErrNoKey is returned by a nil Keyring's Seal and Open: no secret key is configured.
var ErrNoKey = errors.New("no secret key is configured (secrets.key, secrets.key_file or LLMGATE_SECRET_KEY)")

// ErrUnknownKey is returned by Open for a value sealed by a key the keyring does not hold.
var ErrUnknownKey = errors.New("the value was sealed by a key this keyring does not hold")

// Keyring seals with its current key and opens with any of its keys. A nil *Keyring has no key:
// it seals and opens nothing.
type Keyring struct {
	current string // key id
	keys    map[string]cipher.AEAD
}

// ParseKey decodes a key given as standard base64 of 32 bytes (what `openssl rand -base64 32`
// prints); surrounding white space is ignored.
func ParseKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not standard base64 (make one with: openssl rand -base64 32)")
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d (make one with: openssl rand -base64 32)", len(b), KeySize)
	}
	return b, nil
}

// New returns a keyring that seals with current and also opens with previous.
func New(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("secrets: key %d has %d bytes, want %d", i, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		id := KeyID(key)
		if i == 0 {
			k.current = id
		}
		k.keys[id] = aead
	}
	return k, nil
}

// KeyID names a key: the first 8 hex digits of its SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// CurrentKeyID is the id of the key that seals ("" for a nil keyring).
func (k *Keyring) CurrentKeyID() string {
	if k == nil {
		return ""
	}
	return k.current
}

// Seal encrypts plain under the current key, bound to context.
func (k *Keyring) Seal(plain, context string) (string, error) {
	if k == nil {
		return "", ErrNoKey
	}
	aead := k.keys[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	out := aead.Seal(nonce, nonce, []byte(plain), []byte(context))
	return version + ":" + k.current + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts a value Seal made with any key of the keyring and the same context.
func (k *Keyring) Open(sealed, context string) (string, error) {
	if k == nil {
		return "", ErrNoKey
	}
	id, data, err := split(sealed)
	if err != nil {
		return "", err
	}
	aead, ok := k.keys[id]
	if !ok {
		return "", fmt.Errorf("secrets: key %s: %w", id, ErrUnknownKey)
	}
	if len(data) < aead.NonceSize() {
		return "", errors.New("secrets: sealed value too short")
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(context))
	if err != nil {
		return "", errors.New("secrets: the sealed value does not open (altered, or sealed for another entry)")
	}
	return string(plain), nil
}

// SealedBy returns the id of the key that sealed a value.
func SealedBy(sealed string) (string, error) {
	id, _, err := split(sealed)
	return id, err
}

func split(sealed string) (id string, data []byte, err error) {
	v, rest, ok := strings.Cut(sealed, ":")
	if !ok || v != version {
		return "", nil, errors.New("secrets: not a sealed value of version " + version)
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return "", nil, errors.New("secrets: sealed value without a key id")
	}
	data, err = base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, errors.New("secrets: sealed value is not base64")
	}
	return id, data, nil
}

// Fingerprint identifies a credential without revealing it: the first 8 hex digits of its
// SHA-256, enough to tell two credentials apart or to match one an operator holds.
func Fingerprint(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:4])
}
