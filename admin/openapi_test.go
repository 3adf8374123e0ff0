package admin

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/llmgate/llmgate/api"
)

// TestOpenAPIServed: the embedded document is served behind the admin token, as YAML.
func TestOpenAPIServed(t *testing.T) {
	const token = "openapi-test-admin-token-0123456789abcdef"
	srv := httptest.NewServer(New(Deps{Token: token, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler())
	defer srv.Close()
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"with the token", "Bearer " + token, http.StatusOK},
		{"without a token", "", http.StatusUnauthorized},
		{"with a wrong token", "Bearer not-the-admin-token-0123456789abcdefgh", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/openapi.yaml", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusOK {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/yaml" {
				t.Errorf("Content-Type %q, want application/yaml", ct)
			}
			if len(api.OpenAPI) == 0 || !bytes.Equal(body, api.OpenAPI) {
				t.Errorf("body (%d bytes) is not the embedded document (%d bytes)", len(body), len(api.OpenAPI))
			}
		})
	}
}
