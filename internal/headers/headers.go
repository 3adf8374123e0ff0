// Package headers sets HTTP header values the way the request path needs on every request:
// several single-valued headers with one allocation between them, where http.Header.Set makes a
// slice per header (and canonicalises a name that is already canonical).
package headers

import "net/http"

// Set sets each name to its one value; kv alternates name and value, and every name must already
// be in canonical form (http.CanonicalHeaderKey). The values share one backing array, each slice
// capped at its own element, so a later Add to one header copies instead of writing over the
// next one's value.
func Set(h http.Header, kv ...string) {
	vals := make([]string, len(kv)/2)
	for i := range vals {
		vals[i] = kv[2*i+1]
		h[kv[2*i]] = vals[i : i+1 : i+1]
	}
}
