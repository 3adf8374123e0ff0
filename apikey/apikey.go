// Package apikey mints, hashes and recognises llmgate's API keys. A key is Prefix followed by
// 43 base62 characters (about 256 bits of randomness); the store keeps only its hex SHA-256 and
// a short display prefix, so the plaintext is shown once, when it is made, and never again.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// Prefix starts every API key llmgate issues, so a key is recognisable (and secret scanners can
// find leaked ones).
const Prefix = "sk-lg-"

// alphabet is base62: keys survive copy-paste, URLs and shells.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// BodyLen is the number of random base62 characters after Prefix: 43 ≈ 256 bits.
const BodyLen = 43

// DisplayLen is how much of a key is stored in clear for display: Prefix and six characters.
const DisplayLen = len(Prefix) + 6

// New makes a fresh API key: its plaintext (shown once), the hash that is stored (Hash), and the
// display prefix.
func New() (plaintext, hash, display string) {
	var buf [BodyLen]byte
	// rejection sampling keeps every character uniformly likely
	out := make([]byte, 0, BodyLen)
	for len(out) < BodyLen {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		for _, b := range buf {
			if b < 248 && len(out) < BodyLen { // 248 = 4×62
				out = append(out, alphabet[b%62])
			}
		}
	}
	plaintext = Prefix + string(out)
	return plaintext, Hash(plaintext), plaintext[:DisplayLen]
}

// Hash is how a key is stored and looked up: hex SHA-256 of the plaintext. Keys carry 256 bits of
// randomness, so a fast hash is enough (no password stretching needed).
func Hash(plaintext string) string {
	var b [HashLen]byte
	return string(AppendHash(b[:0], plaintext))
}

// HashLen is the length of a key's hash as Hash spells it.
const HashLen = 2 * sha256.Size

// AppendHash appends Hash(plaintext) to dst. With room in dst and a key of plausible length it
// allocates nothing: the gateway looks every request's key up in its cache this way.
func AppendHash(dst []byte, plaintext string) []byte {
	var in [256]byte // Plausible's longest key: its bytes stay on the stack
	var sum [sha256.Size]byte
	if len(plaintext) <= len(in) {
		sum = sha256.Sum256(in[:copy(in[:], plaintext)])
	} else {
		sum = sha256.Sum256([]byte(plaintext))
	}
	return hex.AppendEncode(dst, sum[:])
}

// Plausible rejects strings that cannot be a key before any lookup, so garbage in a flood of bad
// requests never reaches a cache or the store: 8 to 256 characters of [A-Za-z0-9._-], a wider
// set than the keys New makes.
func Plausible(k string) bool {
	if len(k) < 8 || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
