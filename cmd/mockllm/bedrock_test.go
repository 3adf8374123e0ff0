package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestRunBedrockSigV4: with --aws-access-key-id and --aws-secret-access-key (or their
// environment variables) the served Bedrock endpoints take only requests signed with that secret.
func TestRunBedrockSigV4(t *testing.T) {
	t.Setenv("MOCKLLM_AWS_SECRET_ACCESS_KEY", "ignored: the flag wins")
	ctx, cancel := context.WithCancel(context.Background())
	out, stdout := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--listen", "127.0.0.1:0", "--aws-access-key-id", "AKIAMOCKLLMTEST00001",
			"--aws-secret-access-key", "mockllm/Secret0123456789abcdefghijklmnop"}, stdout, io.Discard)
		stdout.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimPrefix(strings.TrimSpace(line), "mockllm listening on ")
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	for secret, want := range map[string]int{"mockllm/Secret0123456789abcdefghijklmnop": 200, "ignored: the flag wins": 403} {
		req, _ := http.NewRequest(http.MethodPost, base+"/model/amazon.nova-lite-v1%3A0/converse", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "AKIAMOCKLLMTEST00001", SecretAccessKey: secret},
			req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("signed with %q: HTTP %d %s, want %d", secret, resp.StatusCode, b, want)
		}
	}
	tr.CloseIdleConnections()
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("run: %v", err)
	}
}
