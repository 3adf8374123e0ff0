package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/providers/vertex"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun starts the server on a free port the way the benchmark does, by reading the announced
// address, and checks that canceling the context (the signal) shuts it down.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, stdout := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--listen", "127.0.0.1:0", "--chunks", "3", "--require-key", "sk-up"}, stdout, io.Discard)
		stdout.Close()
	}()

	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "mockllm listening on http://")
	if !ok || strings.HasSuffix(base, ":0") {
		t.Fatalf("announcement %q", line)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, "http://"+base+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer sk-up")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"completion_tokens":3`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}

	// The Responses API, streamed, with the key and the flags' chunks.
	req, _ = http.NewRequest(http.MethodPost, "http://"+base+"/v1/responses", strings.NewReader(`{"model":"m","input":"hi","stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-up")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), "event: response.output_text.delta\n") != 3 ||
		!strings.Contains(string(body), "event: response.completed\n") || !strings.Contains(string(body), `"output_tokens":3`) {
		t.Errorf("responses stream: %d %s", resp.StatusCode, body)
	}
	// The media endpoints speak OpenAI's format (multipart for audio uploads), with the same fault
	// injection as chat.
	for _, c := range []struct{ path, body, want string }{
		{"/v1/images/generations", `{"model":"dall-e-3","prompt":"a cat","n":2}`, `"url":"https://mock.invalid/images/`},
		{"/v1/images/generations", `{"model":"gpt-image-1","prompt":"a cat","quality":"low"}`, `"output_tokens":272`},
		{"/v1/moderations", `{"model":"omni-moderation-latest","input":"violence"}`, `"flagged":true`},
		{"/v1/moderations", `{"model":"omni-moderation-latest","input":"hi","mock":{"status":503}}`, `simulated 503`},
		{"/v1/audio/speech", `{"model":"gpt-4o-mini-tts","input":"hi","voice":"alloy","stream_format":"sse"}`, `"type":"speech.audio.done"`},
		{"/v1/audio/speech", `{"model":"tts-1","input":"hi","voice":"alloy","mock":{"status":429}}`, `simulated 429`},
		{"/v1/audio/transcriptions", "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nxyz\r\n" +
			"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n", `"usage":{"type":"duration","seconds":1}`},
		{"/v1/audio/translations", "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nxyz\r\n" +
			"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b\r\nContent-Disposition: form-data; name=\"mock\"\r\n\r\n{\"status\":500}\r\n--b--\r\n", `simulated 500`},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+base+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer sk-up")
		if strings.HasPrefix(c.body, "--b") {
			req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), c.want) {
			t.Errorf("%s %s: %d %s; want %s", c.path, c.body, resp.StatusCode, body, c.want)
		}
	}

	big := strings.NewReader(`{"model":"m","messages":[],"pad":"` + strings.Repeat("x", maxBodyBytes) + `"}`)
	req, _ = http.NewRequest(http.MethodPost, "http://"+base+"/v1/chat/completions", big)
	req.Header.Set("Authorization", "Bearer sk-up")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
	tr.CloseIdleConnections()

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the signal")
	}
}

func TestRunFlags(t *testing.T) {
	ctx := context.Background()
	if err := run(ctx, []string{"--help"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if err := run(ctx, []string{"--chunks", "x"}, io.Discard, io.Discard); err == nil {
		t.Error("a bad flag value was accepted")
	}
	if err := run(ctx, []string{"extra"}, io.Discard, io.Discard); err == nil {
		t.Error("a stray argument was accepted")
	}
	if err := run(ctx, []string{"--listen", "256.0.0.1:1"}, io.Discard, io.Discard); err == nil {
		t.Error("an impossible address was accepted")
	}
}

// TestVertexKeyFlag: with --vertex-key, the token endpoint mints tokens for the key's assertions,
// and the Vertex AI paths take them.
func TestVertexKeyFlag(t *testing.T) {
	sa, err := mock.NewServiceAccount("bench@proj.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // run listens itself: the key file must name the port before it starts
	file := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, sa.JSON("proj", "http://"+addr+"/token"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, stdout := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--listen", addr, "--chunks", "2", "--vertex-key", file, "--vertex-token-ttl", "90s"}, stdout, io.Discard)
		stdout.Close()
	}()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out) //nolint:errcheck // nothing more is printed
	p, err := vertex.New(vertex.Options{BaseURL: "http://" + addr + "/v1", Settings: vertex.Settings{Region: "us-central1", CredentialsFile: file},
		Outbound: outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Do(ctx, &providers.Request{Endpoint: providers.ChatCompletions, Model: "claude-sonnet-4-5@20250929", Header: http.Header{},
		Body: []byte(`{"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.CloseIdleConnections()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"content":"the mock"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--vertex-key", filepath.Join(t.TempDir(), "none.json")}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--vertex-key") {
		t.Errorf("a missing key file: %v", err)
	}
}
