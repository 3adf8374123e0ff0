package replay

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// Canonical writes body as canonical JSON: object keys sorted, no insignificant whitespace,
// strings re-escaped one way. Two bodies that differ only in key order, spacing or string
// escapes give the same bytes; numbers keep their literal text (1 and 1.0 stay apart, which can
// only cost a miss, never a wrong answer). A duplicate key keeps its last value, as Go reads it.
//
// encoding/json does the job (its Marshal sorts map keys), so no canonicalisation library is
// needed for it.
func Canonical(body []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("replay: canonical json: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("replay: canonical json: more than one value")
	}
	return json.Marshal(v)
}

// Fingerprint is the SHA-256 of what makes an answer: the endpoint, the public model it was
// resolved to, the body in canonical form and any further parts that change the answer (the
// request headers an upstream reads, such as anthropic-beta). Each part is length-prefixed, so
// no two different lists of parts hash alike.
func Fingerprint(endpoint, model string, body []byte, extra ...string) ([32]byte, error) {
	c, err := Canonical(body)
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	part := func(b []byte) {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	part([]byte(endpoint))
	part([]byte(model))
	part(c)
	for _, s := range extra {
		part([]byte(s))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}
