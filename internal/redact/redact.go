// Package redact removes credentials from text the gateway relays from an upstream: the
// error.message of an upstream's error answer is kept for the caller (it says what was wrong with
// the request), but an upstream may quote a key, a token or a signed URL in it.
package redact

import (
	"regexp"
	"strings"
)

// Placeholder replaces each credential found.
const Placeholder = "[REDACTED]"

// minKnown is the shortest configured credential replaced wherever it appears: a shorter value
// ("1", "eu") would mangle ordinary words, and is no secret worth the damage.
const minKnown = 8

// A rule finds one kind of credential; repl keeps what names it (the header or parameter name).
type rule struct {
	re   *regexp.Regexp
	repl string
}

var rules = []rule{
	// Authorization: Bearer <token>, Basic <credentials>
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}`), "${1}${2}" + Placeholder},
	// Keys by their vendor prefix: OpenAI and Anthropic (sk-, sk-proj-, sk-ant-…), Google (AIza…),
	// AWS access key ids, GitHub tokens, JWTs.
	{regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{8,}`), Placeholder},
	{regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{20,}`), Placeholder},
	// Google OAuth access tokens (Vertex AI's bearer tokens), and a PEM private key (a service
	// account's), whole or cut off.
	{regexp.MustCompile(`\bya29\.[0-9A-Za-z._-]{8,}`), Placeholder},
	{regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|$)`), Placeholder},
	{regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`), Placeholder},
	{regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{20,}`), Placeholder},
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`), Placeholder},
	// Secrets in query strings: ?key=…, &sig=…
	{regexp.MustCompile(`(?i)([?&](?:key|api[_-]?key|token|access[_-]?token|sig|signature|code|secret|password)=)[^&\s"'#<>]+`), "${1}" + Placeholder},
	// name: value and name=value, as a header or a parameter is quoted (api-key: …, "token": "…").
	{regexp.MustCompile(`(?i)\b((?:x-goog-api-key|x-api-key|api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|client[_-]?secret|secret|password|passwd|token|key)["']?\s*[:=]\s*["']?)[^\s"'&,;<>]{8,}`), "${1}" + Placeholder},
	// A long opaque string right after the word key, token, secret or credential ("the key
	// 3f9a…", "token: 'dGhp…'").
	{regexp.MustCompile(`(?i)\b((?:key|token|secret|credential)s?\b[\s:='"]{1,3})[A-Za-z0-9+/_-]{20,}={0,2}`), "${1}" + Placeholder},
}

// Credentials returns s with every credential it recognises replaced by Placeholder: each of
// known (the provider's own configured key and header values) wherever it appears, then anything
// shaped like a key, a bearer token, a key=… parameter or a long opaque value after "key",
// "token" or "secret". The rest of s is kept as it is.
func Credentials(s string, known ...string) string {
	for _, k := range known {
		if len(k) >= minKnown {
			s = strings.ReplaceAll(s, k, Placeholder)
		}
	}
	for _, r := range rules {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return s
}
