package outbound

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// caFile writes srv's certificate, its own authority, to a PEM file and returns the file's path.
func caFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCAFileReadsNoSystemRootsAtStart: checking outbound.ca_file at start reads the file alone;
// the system's roots, which it joins (about 1.5 MB of memory once parsed), are read on the first
// TLS connection, so a gateway holds them only once an upstream is called over TLS.
func TestCAFileReadsNoSystemRootsAtStart(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	c := Config{CAFile: caFile(t, srv)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.RootCAs()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("checking outbound.ca_file allocated %.0f KiB; want at most 64 KiB (the system's roots read on first use)", float64(got)/1024)
	}
}

// TestCAFileTrustedOverHTTP2: a client whose policy carries outbound.ca_file's roots reaches an
// upstream that authority signed, over HTTP/2 when it offers it, and asks for the roots only when
// it opens a TLS connection; an upstream signed by anyone else is refused, and the policy still
// decides which addresses TLS connections may reach.
func TestCAFileTrustedOverHTTP2(t *testing.T) {
	proto := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	srv := httptest.NewUnstartedServer(proto)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	other := httptest.NewUnstartedServer(proto) // with a certificate of its own: httptest's is srv's
	other.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	other.StartTLS()
	defer other.Close()
	plain := httptest.NewServer(proto)
	defer plain.Close()
	roots, err := Config{CAFile: caFile(t, srv)}.RootCAs()
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	policy := Policy{Allow: []netip.Prefix{mustPrefix(t, "127.0.0.1")},
		RootCAs: func() *x509.CertPool { asked.Add(1); return roots() }}
	cl := NewClient(Options{Policy: policy})
	defer cl.CloseIdleConnections()
	get := func(c *http.Client, url string) (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(cl, plain.URL); err != nil || got != "HTTP/1.1" || asked.Load() != 0 {
		t.Fatalf("plain HTTP: %q, %v, roots asked %d times; want HTTP/1.1 and not asked", got, err, asked.Load())
	}
	for range 2 {
		if got, err := get(cl, srv.URL); err != nil || got != "HTTP/2.0" {
			t.Fatalf("TLS upstream signed by the CA file: %q, %v; want HTTP/2.0", got, err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("roots asked %d times for one TLS connection; want 1", n)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := get(cl, other.URL); !errors.As(err, &unknown) {
		t.Errorf("TLS upstream signed by another authority: %v; want an unknown authority error", err)
	}
	refused := NewClient(Options{Policy: Policy{RootCAs: roots}})
	defer refused.CloseIdleConnections()
	var re *RefusedError
	if _, err := get(refused, srv.URL); !errors.As(err, &re) {
		t.Errorf("TLS upstream on loopback, default policy: %v; want a refusal", err)
	}
}

// selfSigned is a certificate for 127.0.0.1 signed by itself.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
