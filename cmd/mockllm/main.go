// Command mockllm serves the simulated OpenAI-compatible upstream of package providers/mock (chat,
// completions, embeddings, the Responses API, and the Anthropic, Gemini, Bedrock and Vertex AI formats) over
// HTTP, for the gateway's integration tests and benchmark. It prints one line,
// "mockllm listening on http://ADDR", once it accepts connections; with --listen HOST:0 the line
// carries the port the system chose, which is how callers find it. With --tls-cert-out it serves
// HTTPS (HTTP/2 or HTTP/1.1, as the client offers) on a certificate made at start-up, and the
// line says https://.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/llmgate/llmgate/providers/mock"
)

const (
	// maxBodyBytes matches the largest request OpenAI-style APIs accept; beyond it the mock
	// answers 413 instead of buffering without bound.
	maxBodyBytes = 32 << 20
	// shutdownGrace lets running streams finish on SIGINT/SIGTERM before connections are cut.
	shutdownGrace = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		stop()
		os.Exit(1)
	}
}

// run serves until ctx is canceled, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mockllm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on; port 0 picks a free one")
	var o mock.Options
	fs.IntVar(&o.LatencyMS, "latency-ms", 0, "delay before a non-stream answer, in milliseconds")
	fs.IntVar(&o.TTFTMS, "ttft-ms", 0, "delay before the first stream chunk, in milliseconds")
	fs.Float64Var(&o.TokensPerSecond, "tokens-per-second", 0, "stream pacing after the first chunk; 0 = unpaced")
	fs.IntVar(&o.Chunks, "chunks", 0, "content chunks per answer (0 = 20)")
	fs.IntVar(&o.TokensPerChunk, "tokens-per-chunk", 0, "completion tokens per chunk (0 = 1)")
	fs.Float64Var(&o.ErrorRate, "error-rate", 0, "fraction of requests answered with a 500")
	fs.Int64Var(&o.Seed, "seed", 0, "seed for the error-rate draw (0 = random)")
	fs.StringVar(&o.RequireKey, "require-key", os.Getenv("MOCKLLM_REQUIRE_KEY"),
		"API key required: Authorization: Bearer (OpenAI), x-api-key (Anthropic), x-goog-api-key (Gemini) (default $MOCKLLM_REQUIRE_KEY; empty = none)")
	vertexKey := fs.String("vertex-key", "", "a Google service account's JSON key: the simulated token endpoint (/token) mints Vertex AI tokens for assertions it signs")
	fs.DurationVar(&o.TokenLifetime, "vertex-token-ttl", 0, "lifetime of the Vertex AI access tokens minted (0 = 1h)")
	fs.StringVar(&o.AWSAccessKeyID, "aws-access-key-id", os.Getenv("MOCKLLM_AWS_ACCESS_KEY_ID"),
		"with --aws-secret-access-key: verify the SigV4 signatures of Bedrock requests for these credentials (default $MOCKLLM_AWS_ACCESS_KEY_ID)")
	fs.StringVar(&o.AWSSecretAccessKey, "aws-secret-access-key", os.Getenv("MOCKLLM_AWS_SECRET_ACCESS_KEY"),
		"the secret access key Bedrock signatures are verified with (default $MOCKLLM_AWS_SECRET_ACCESS_KEY)")
	certOut := fs.String("tls-cert-out", "", "serve HTTPS on a self-signed certificate for 127.0.0.1 and ::1 made at start-up, written as PEM to this file for clients to trust")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *vertexKey != "" {
		var err error
		if o.ServiceAccounts, err = trustKeyFile(*vertexKey); err != nil {
			return fmt.Errorf("--vertex-key: %w", err)
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           http.MaxBytesHandler(mock.NewHandler(o), maxBodyBytes),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: paced streams and hang_ms legitimately take long.
	}
	scheme := "http"
	if *certOut != "" {
		cert, err := selfSigned(*certOut)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--tls-cert-out: %w", err)
		}
		// net/http's ServeTLS offers HTTP/2 through ALPN.
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	served := make(chan error, 1)
	go func() {
		if scheme == "https" {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	fmt.Fprintf(stdout, "mockllm listening on %s://%s\n", scheme, ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close() // the grace ran out: cut the remaining streams
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// trustKeyFile reads a service account's JSON key and returns its account and public key, for the
// token endpoint to check assertions against.
func trustKeyFile(path string) (map[string]*rsa.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var k struct {
		Email      string `json:"client_email"`
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(raw, &k); err != nil || k.Email == "" {
		return nil, errors.New("not a service account key (no client_email)")
	}
	block, _ := pem.Decode([]byte(k.PrivateKey))
	if block == nil {
		return nil, errors.New("its private_key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, errors.New("its private_key is neither PKCS #8 nor PKCS #1")
		}
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("its private_key is not an RSA key")
	}
	return map[string]*rsa.PublicKey{k.Email: &rk.PublicKey}, nil
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost, valid for a day, and writes
// it (not its key) as PEM to path: a client that trusts the file reaches this server and no
// other. Nothing of it outlives the process but the file.
func selfSigned(path string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mockllm"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own authority: clients add it to their roots
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
