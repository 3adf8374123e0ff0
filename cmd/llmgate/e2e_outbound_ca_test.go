package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// TestOutboundCAFileTrustsPrivateUpstream: an upstream on loopback whose TLS certificate no
// public authority signed is reached, over HTTP/2, once outbound.ca_file names its certificate;
// without it the handshake fails and the caller gets the usual upstream error.
func TestOutboundCAFileTrustsPrivateUpstream(t *testing.T) {
	var h2 atomic.Int64
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			h2.Add(1)
		}
		up.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	withTLSUpstream := func(ca string) envOption {
		return func(c *Config) {
			c.Outbound.CAFile = ca
			c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "tlsup", Type: "openai", BaseURL: srv.URL + "/v1", APIKey: upstreamKey}})
			c.Models = append(c.Models, providers.ModelConfig{Name: "tls", Deployments: []providers.DeploymentConfig{{Provider: "tlsup", Model: "tls-model"}}})
		}
	}
	body := []byte(`{"model":"tls","stream":true,"messages":[{"role":"user","content":"hi"}]}`)

	t.Run("trusted through ca_file", func(t *testing.T) {
		e := newEnv(t, withTLSUpstream(caFile))
		resp := e.post(t.Context(), "/chat/completions", e.key, body)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("data: [DONE]")) {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
		}
		if h2.Load() == 0 {
			t.Error("the upstream saw no HTTP/2 request")
		}
	})
	t.Run("untrusted without it", func(t *testing.T) {
		e := newEnv(t, withTLSUpstream(""))
		resp := e.post(t.Context(), "/chat/completions", e.key, body)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), `"code":"upstream_unavailable"`) {
			t.Fatalf("HTTP %d: %s, want 502 upstream_unavailable", resp.StatusCode, b)
		}
	})
}

// TestOutboundCAFileErrors: a CA file that cannot be read or holds no certificate is a config
// error naming outbound.ca_file.
func TestOutboundCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"missing": filepath.Join(dir, "nope.pem"), "no certificate": empty} {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, "outbound:\n  ca_file: "+path+"\n"), envOf(nil))
			if err == nil {
				err = cfg.validate()
			}
			if err == nil || !strings.Contains(err.Error(), "outbound.ca_file") {
				t.Errorf("error = %v, want one naming outbound.ca_file", err)
			}
		})
	}
}
