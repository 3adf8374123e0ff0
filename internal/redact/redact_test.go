package redact

import (
	"strings"
	"testing"
)

func TestCredentials(t *testing.T) {
	const P = Placeholder
	for _, tc := range []struct {
		in    string
		known []string
		want  string
	}{
		// Ordinary messages are untouched.
		{"Invalid value for 'max_tokens': must be at most 4096.", nil, "Invalid value for 'max_tokens': must be at most 4096."},
		{"The model `gpt-5` does not exist or you do not have access to it.", nil, "The model `gpt-5` does not exist or you do not have access to it."},
		{"API key not valid. Please pass a valid API key.", nil, "API key not valid. Please pass a valid API key."},
		{"messages.0.content: Input should be a valid string", nil, "messages.0.content: Input should be a valid string"},
		{"max_tokens: 100 > 64000, which is the maximum allowed", nil, "max_tokens: 100 > 64000, which is the maximum allowed"},
		{"Incorrect API key provided: sk-proj-****************abcd.", nil, "Incorrect API key provided: sk-proj-****************abcd."},
		// Vendor-shaped keys.
		{"Incorrect API key provided: sk-proj-Abcdefghij0123456789XYZ.", nil, "Incorrect API key provided: " + P + "."},
		{"invalid x-api-key sk-ant-api03-AbCdEfGh-1234567890", nil, "invalid x-api-key " + P},
		{"bad AIzaSyA1234567890abcdefghijklmnopqrstu here", nil, "bad " + P + " here"},
		{"creds AKIAIOSFODNN7EXAMPLE rejected", nil, "creds " + P + " rejected"},
		{"token ghp_abcdefghijklmnopqrstuvwxyz0123 rejected", nil, "token " + P + " rejected"},
		{"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl expired", nil, "jwt " + P + " expired"},
		{"token ya29.a0AfB_byC-1x2y3z was refused", nil, "token " + P + " was refused"},
		{"key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n is bad", nil, "key " + P + "\n is bad"},
		{"cut: -----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkqh", nil, "cut: " + P},
		// Bearer and Basic.
		{"Authorization: Bearer abc.def-ghi_123 is invalid", nil, "Authorization: Bearer " + P + " is invalid"},
		{"header was 'bearer XYZ123456'", nil, "header was 'bearer " + P + "'"},
		{"Basic dXNlcjpwYXNzd29yZA== refused", nil, "Basic " + P + " refused"},
		// Named values and query parameters.
		{"api-key: 0123456789abcdef0123 is not valid", nil, "api-key: " + P + " is not valid"},
		{`{"api_key": "my-long-secret-value"}`, nil, `{"api_key": "` + P + `"}`},
		{"GET https://x.example/v1/models?key=abc123&alt=sse failed", nil, "GET https://x.example/v1/models?key=" + P + "&alt=sse failed"},
		{"url ...?alt=sse&sig=abcd%2Fef", nil, "url ...?alt=sse&sig=" + P},
		{"password=hunter2hunter2", nil, "password=" + P},
		{"access_token=ya29.a0AfH6SMBx", nil, "access_token=" + P},
		// Long opaque strings after key/token/secret.
		{"the key 3f9a2b7c4d5e6f708192a3b4c5d6e7f8 is revoked", nil, "the key " + P + " is revoked"},
		{"Token 'dGhpcyBpcyBhIHNlY3JldCB0b2tlbg==' expired", nil, "Token '" + P + "' expired"},
		// The provider's own key and header values, whatever their shape; short ones are left.
		{"model not enabled for upstream-secret-credential today", []string{"upstream-secret-credential"}, "model not enabled for " + P + " today"},
		{"org org-12345678 has no access", []string{"org-12345678", "eu"}, "org " + P + " has no access"},
		{"region eu is down", []string{"eu"}, "region eu is down"},
	} {
		if got := Credentials(tc.in, tc.known...); got != tc.want {
			t.Errorf("Credentials(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestCredentialsIdempotent: scrubbing twice changes nothing more, and the placeholder itself is
// never mistaken for a secret.
func TestCredentialsIdempotent(t *testing.T) {
	in := "key=AIzaSyA1234567890abcdefghijklmnopqrstu Bearer sk-abcdefghijklmnop token 0123456789abcdef0123456789"
	once := Credentials(in)
	if twice := Credentials(once); twice != once || strings.Contains(once, "AIza") || strings.Contains(once, "sk-a") || strings.Contains(once, "0123456789abcdef") {
		t.Errorf("once %q, twice %q", once, Credentials(once))
	}
}
