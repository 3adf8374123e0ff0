package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/providers/mock"
)

// cleanEnviron is the test's environment without LLMGATE_* and OPENAI_* variables, so that a
// child process sees only what a test gives it, as a fresh shell following the README would.
func cleanEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LLMGATE_") && !strings.HasPrefix(kv, "OPENAI_") {
			out = append(out, kv)
		}
	}
	return out
}

// TestProductionConfigStarts follows the README's production setup as written: the binary runs
// configs/production.yaml unedited, with PostgreSQL, Redis and the admin token from LLMGATE_*
// variables and one OpenAI-compatible upstream whose key is OPENAI_API_KEY; `llmgate keys
// create` makes a key through the admin API, and a chat completion through it reaches the
// upstream with OPENAI_API_KEY and brings its answer back. The upstream is a simulated one on
// loopback, reached by the two optional variables the README names for an upstream on one's own
// network (OPENAI_BASE_URL, OPENAI_ALLOW_PRIVATE_NETWORK); the listeners take free ports instead
// of :8080 and 127.0.0.1:8081, which the test machine may be using.
func TestProductionConfigStarts(t *testing.T) {
	const apiKey = "sk-production-upstream-key"
	var mu sync.Mutex
	var auths []string
	// Once barrier is set, each request waits at the upstream until `parallel` are there at once
	// (or a while passes), so that they are in flight together at the gateway.
	var barrier chan struct{}
	inFlight, maxInFlight := 0, 0
	up := mock.NewHandler(mock.Options{RequireKey: apiKey})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		b := barrier
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		if b != nil && inFlight == parallel {
			close(b)
		}
		mu.Unlock()
		if b != nil {
			select {
			case <-b:
			case <-time.After(10 * time.Second):
			}
		}
		up.ServeHTTP(w, r)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer srv.Close()
	config, err := filepath.Abs("../../configs/production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnviron(),
		"LLMGATE_DATABASE_URL="+pg.NewDatabase(t),
		"LLMGATE_REDIS_URL=redis://"+rdb.Addr(t),
		"LLMGATE_ADMIN_TOKEN="+testAdminToken,
		"OPENAI_API_KEY="+apiKey,
		"OPENAI_BASE_URL="+srv.URL+"/v1",
		"OPENAI_ALLOW_PRIVATE_NETWORK=true",
		"LLMGATE_LISTEN=127.0.0.1:0", "LLMGATE_ADMIN_LISTEN=127.0.0.1:0")

	serve := exec.Command(llmgateBinary(t), "serve", "--config", config)
	serve.Env, serve.Dir = env, t.TempDir() // data_dir "." is the spool's parent
	gw := startGatewayProcess(t, serve)

	keys := exec.Command(llmgateBinary(t), "keys", "create", "--name", "billing-service", "--user", "billing-service", "--tier", "service")
	keys.Env = append(env, "LLMGATE_ADMIN_URL="+gw.adminURL)
	out, err := keys.CombinedOutput()
	if err != nil {
		t.Fatalf("llmgate keys create: %v\n%s\ngateway log:\n%s", err, out, gw.log)
	}
	key := secret(t, string(out))

	oc := openai.DefaultConfig(key)
	oc.BaseURL = gw.url + "/v1"
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	oc.HTTPClient = &http.Client{Transport: tr}
	resp, err := openai.NewClientWithConfig(oc).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Hello!"}}})
	if err != nil {
		t.Fatalf("chat completion: %v\ngateway log:\n%s", err, gw.log)
	}
	if resp.Model != "gpt-4o-mini" || len(resp.Choices) != 1 || len(strings.Fields(resp.Choices[0].Message.Content)) != 20 {
		t.Errorf("answer = %+v, want the upstream's 20-word answer from gpt-4o-mini", resp)
	}
	mu.Lock()
	if len(auths) != 1 || auths[0] != "Bearer "+apiKey {
		t.Errorf("upstream saw Authorization %q, want one request with Bearer OPENAI_API_KEY", auths)
	}
	barrier = make(chan struct{})
	mu.Unlock()

	// The key's limits are the service tier's, said on create, and hold: more requests at once
	// than the file's default tier allows (10) all pass. A key on the default tier would see 429s.
	if !regexp.MustCompile(`(?m)^concurrent +100 +tier:service \(user billing-service\)$`).MatchString(string(out)) {
		t.Errorf("keys create does not show the service tier's concurrency limit:\n%s", out)
	}
	client := openai.NewClientWithConfig(oc)
	errs := make(chan error, parallel)
	for range parallel {
		go func() {
			_, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Hello!"}}})
			errs <- err
		}()
	}
	for range parallel {
		if err := <-errs; err != nil {
			t.Errorf("one of %d requests at once: %v", parallel, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxInFlight != parallel {
		t.Errorf("the upstream saw at most %d requests at once, want %d", maxInFlight, parallel)
	}
}

// parallel is how many requests TestProductionConfigStarts sends at once with its service key:
// more than configs/production.yaml's default tier lets one key have in flight.
const parallel = 12
