package mock

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The mock speaks Google Cloud's Vertex AI too (PROVIDERS-2.md §5), so that the vertex adapter is
// tested against a real HTTP upstream with real OAuth:
//
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
//	POST …/publishers/google/models/{m}:streamGenerateContent?alt=sse
//	POST …/publishers/anthropic/models/{m}:rawPredict and :streamRawPredict
//	POST /v1/publishers/google/models/{m}:generateContent (and the stream): express mode
//	POST /token: Google's OAuth 2 token endpoint, JWT bearer grant (RFC 7523)
//
// The Google publisher answers as the Gemini API does (gemini.go), but that a stream's events
// carry usage counts only in the last one, as Vertex AI's do; the Anthropic publisher answers as
// the Messages API does (anthropic.go), but that its body names no model (the URL does) and
// carries anthropic_version "vertex-2023-10-16", and stream:true goes with streamRawPredict only.
// The faults and overrides are the same.
//
// Authentication: the token endpoint mints an access token for a JWT assertion signed (RS256) by
// a service account the handler trusts (Options.ServiceAccounts), whose iss is that account, aud
// the endpoint's own URL, scope cloud-platform, and exp in the future; the token lives
// Options.TokenLifetime (default one hour). Every Vertex AI call needs a live token as
// "Authorization: Bearer", else 401 UNAUTHENTICATED in Google's shape (even on Anthropic's
// models, as Vertex AI answers); a stream whose token lapses before it ends stops with that error
// as its next event (Google's error object, or Anthropic's authentication_error event). A Google
// publisher call may carry an API key as x-goog-api-key instead, checked against RequireKey.

const (
	// vertexTokenPath is the token endpoint's path.
	vertexTokenPath = "/token"
	// vertexAnthropicVersion is the anthropic_version Vertex AI wants in a Claude body.
	vertexAnthropicVersion = "vertex-2023-10-16"
	// cloudPlatformScope is the scope a token must be asked for.
	cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
	// defaultTokenLifetime is Google's: an hour.
	defaultTokenLifetime = time.Hour
	// jwtBearerGrant is the grant_type of a JWT assertion (RFC 7523).
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// errUnauthenticated is Google's message for a missing, wrong or expired token.
const errUnauthenticated = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."

// vertexCall is what a Vertex AI path names.
type vertexCall struct {
	publisher, model, method string
}

// parseVertexPath reads /v1[beta1]/projects/{p}/locations/{l}/publishers/{pub}/models/{m}:{method}
// or the express mode's /v1[beta1]/publishers/{pub}/models/{m}:{method}.
func parseVertexPath(p string) (vertexCall, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) < 5 || (parts[0] != "v1" && parts[0] != "v1beta1") {
		return vertexCall{}, false
	}
	rest := parts[1:]
	if rest[0] == "projects" {
		if len(rest) != 8 || rest[2] != "locations" || rest[1] == "" || rest[3] == "" {
			return vertexCall{}, false
		}
		rest = rest[4:]
	}
	if len(rest) != 4 || rest[0] != "publishers" || rest[2] != "models" {
		return vertexCall{}, false
	}
	i := strings.LastIndexByte(rest[3], ':')
	if i <= 0 {
		return vertexCall{}, false
	}
	return vertexCall{publisher: rest[1], model: rest[3][:i], method: rest[3][i+1:]}, true
}

// serveVertex answers a Vertex AI model call by its publisher.
func (h *Handler) serveVertex(w http.ResponseWriter, r *http.Request, v vertexCall) {
	switch {
	case v.publisher == "google":
		h.serveGemini(w, r, &v)
	case v.publisher == "anthropic" && (v.method == "rawPredict" || v.method == "streamRawPredict"):
		h.serveMessages(w, r, &v)
	default:
		writeGoogleError(w, http.StatusNotFound, "mock: "+strconv.Quote(v.publisher+"/"+v.method)+" is not simulated.", "")
	}
}

// googleAuth is the token endpoint's state: the trusted service accounts and the tokens minted.
type googleAuth struct {
	accounts map[string]*rsa.PublicKey // by client_email
	lifetime time.Duration

	mu     sync.Mutex
	tokens map[string]time.Time // access token → expiry
	minted int
}

func newGoogleAuth(o Options) *googleAuth {
	lifetime := o.TokenLifetime
	if lifetime <= 0 {
		lifetime = defaultTokenLifetime
	}
	return &googleAuth{accounts: o.ServiceAccounts, lifetime: lifetime, tokens: map[string]time.Time{}}
}

// TokensMinted is the number of access tokens the token endpoint has issued.
func (h *Handler) TokensMinted() int {
	h.google.mu.Lock()
	defer h.google.mu.Unlock()
	return h.google.minted
}

// serveToken is the JWT bearer grant of Google's token endpoint.
func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed; use POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	h.log.record(r.URL.Path, r.Header, []byte(r.PostForm.Encode()))
	if r.PostForm.Get("grant_type") != jwtBearerGrant {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type.")
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	aud := scheme + "://" + r.Host + r.URL.Path
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		if key := h.google.accounts[iss]; key != nil {
			return key, nil
		}
		return nil, errors.New("unknown service account")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(aud), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: "+err.Error())
		return
	}
	if scope, _ := claims["scope"].(string); !slices.Contains(strings.Fields(scope), cloudPlatformScope) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "The assertion asks for no cloud-platform scope.")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "ya29.mock-" + hex.EncodeToString(b[:])
	g := h.google
	g.mu.Lock()
	now := time.Now()
	for t, exp := range g.tokens { // forget lapsed tokens, so the map stays small
		if now.After(exp) {
			delete(g.tokens, t)
		}
	}
	g.tokens[token] = now.Add(g.lifetime)
	g.minted++
	g.mu.Unlock()
	out, _ := json.Marshal(map[string]any{"access_token": token, "expires_in": int(g.lifetime.Seconds()), "token_type": "Bearer"})
	writeJSON(w, out)
}

// vertexAuth checks a Vertex AI call's credentials: a live bearer token, or (Google's models only)
// the API key. It answers 401 itself when they fail, and otherwise returns what tells a stream that
// its token has lapsed (nil for a key).
func (h *Handler) vertexAuth(w http.ResponseWriter, r *http.Request, google bool) (func() bool, outcome, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" && google && r.Header.Get("X-Goog-Api-Key") != "" {
		if want := strings.TrimPrefix(h.wantAuth, "Bearer "); want != "" {
			o, answered := checkGoogleKey(w, r, want)
			return nil, o, answered
		}
		return nil, writeGoogleError(w, http.StatusUnauthorized, errUnauthenticated, ""), true
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	g := h.google
	g.mu.Lock()
	exp, known := g.tokens[token]
	g.mu.Unlock()
	if !ok || !known || !time.Now().Before(exp) {
		w.Header().Set("Www-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		return nil, writeGoogleError(w, http.StatusUnauthorized, errUnauthenticated, ""), true
	}
	return func() bool { return !time.Now().Before(exp) }, 0, false
}

// writeOAuthError answers as Google's token endpoint does: {"error","error_description"}.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
