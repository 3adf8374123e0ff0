package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/internal/adminclient"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// withRouting adds providers and public models to an env's configuration.
func withRouting(provs []ProviderConfig, models ...providers.ModelConfig) envOption {
	return func(c *Config) {
		c.Providers = append(c.Providers, provs...)
		c.Models = append(c.Models, models...)
	}
}

func openaiProvider(name, url string) ProviderConfig {
	return ProviderConfig{Config: providers.Config{Name: name, Type: "openai", BaseURL: url + "/v1"}}
}

// chat sends one chat request for model with extra body fields and returns the status, the
// deployment that answered (from the usage record) and the body.
func (e *env) chat(model, extra string, stream bool) (int, string, string) {
	e.t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]` + extra
	if stream {
		body += `,"stream":true`
	}
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body+"}"))
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec := e.usageFor(resp.Header.Get("X-Request-Id"))
	return resp.StatusCode, rec.Deployment, string(raw)
}

// TestRoutingStrategies: the cost strategy sends everything to the cheapest deployment of a
// priority; the latency strategy, once both are measured, to the fastest.
func TestRoutingStrategies(t *testing.T) {
	fast := newSwitchable(t, mock.Options{})
	slow := newSwitchable(t, mock.Options{LatencyMS: 150})
	e := newEnv(t, withRouting([]ProviderConfig{openaiProvider("fast", fast.Server.URL), openaiProvider("slow", slow.Server.URL)},
		providers.ModelConfig{Name: "cheap", Strategy: "cost", Deployments: []providers.DeploymentConfig{
			{ID: "dear", Provider: "fast", Model: "dear-model"}, {ID: "cheap", Provider: "slow", Model: "cheap-model"}}},
		providers.ModelConfig{Name: "quick", Strategy: "latency", Deployments: []providers.DeploymentConfig{
			{ID: "q-slow", Provider: "slow", Model: "m"}, {ID: "q-fast", Provider: "fast", Model: "m"}}}))
	e.adminSend(http.MethodPut, "/admin/pricing/dear-model", `{"input_per_million":10,"output_per_million":30}`, nil)
	e.adminSend(http.MethodPut, "/admin/pricing/cheap-model", `{"input_per_million":0.1,"output_per_million":0.3}`, nil)
	for i := 0; i < 10; i++ {
		if status, dep, _ := e.chat("cheap", "", false); status != 200 || dep != "cheap" {
			t.Fatalf("cost strategy: %d by %q, want the cheaper deployment", status, dep)
		}
	}
	byDep := map[string]int{}
	for i := 0; i < 20; i++ {
		_, dep, _ := e.chat("quick", "", false)
		byDep[dep]++
	}
	// The first two requests measure each deployment; every later one goes to the fast one.
	if byDep["q-fast"] < 18 {
		t.Errorf("latency strategy: %v, want the faster deployment for all but the measuring requests", byDep)
	}
}

// metrics returns the admin listener's /metrics text.
func (e *env) metrics() string {
	e.t.Helper()
	resp, err := e.http.Get(e.app.adminURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestHotReloadUnderLoad: provider and model changes in the config file apply without a restart
// while requests keep flowing, none of them failing; a stream in flight finishes on the old
// configuration; a broken file changes nothing; SIGHUP reloads too.
func TestHotReloadUnderLoad(t *testing.T) {
	a1, b1 := newSwitchable(t, mock.Options{}), newSwitchable(t, mock.Options{})
	slow := newSwitchable(t, mock.Options{Chunks: 10, TokensPerSecond: 5})
	dir := t.TempDir()
	path := dir + "/llmgate.yaml"
	write := func(liveProvider string, extra string, poll string) {
		t.Helper()
		cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: " + dir + "\nadmin_token: " + testAdminToken + "\n" +
			"config_poll_interval: " + poll + "\nlog: {level: error}\nquota: {default_tier: open, tiers: {open: {}}}\n" +
			"outbound: {allow: [127.0.0.1]}\n" +
			"providers:\n" +
			"  - {name: a, type: openai, base_url: " + a1.Server.URL + "/v1}\n" +
			"  - {name: b, type: openai, base_url: " + b1.Server.URL + "/v1}\n" +
			"  - {name: slow, type: openai, base_url: " + slow.Server.URL + "/v1}\n" +
			"models:\n" +
			"  - {name: live, deployments: [{provider: " + liveProvider + ", model: m}]}\n" + extra
		writeAtomic(t, path, cfg)
	}
	write("a", "  - {name: old-slow, deployments: [{provider: slow, model: m}]}\n", "100ms")
	cfg, err := loadConfig(path, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); a.watchConfig(wctx, path, nil) }()
	t.Cleanup(func() {
		stopWatch()
		<-watched
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	e := &env{t: t, app: a, http: &http.Client{}, baseURL: a.publicURL + "/v1",
		admin: adminclient.New(a.adminURL, testAdminToken)}
	e.key = e.newKey(createKeyBody{Name: "reload"}).Key

	// Load: four clients sending to "live" until told to stop.
	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if status, _, body := e.chat("live", "", false); status != 200 {
					failed.Add(1)
					t.Errorf("request during reloads: %d %s", status, body)
				}
				done.Add(1)
			}
		})
	}
	// A stream that starts on the old configuration (about 2 s long).
	streamDone := make(chan string, 1)
	go func() {
		_, _, body := e.chat("old-slow", "", true)
		streamDone <- body
	}()
	time.Sleep(300 * time.Millisecond)

	write("b", "  - {name: new-model, deployments: [{provider: a, model: m}]}\n", "100ms")
	waitFor(t, 5*time.Second, "the new routing to reach provider b", func() bool { return b1.Seen.Load() > 0 })
	if status, _, _ := e.chat("new-model", "", false); status != 200 {
		t.Errorf("a model added by the reload: %d", status)
	}
	if body := <-streamDone; !strings.Contains(body, "[DONE]") {
		t.Errorf("the stream in flight across the reload did not complete: %q", body)
	}
	if status, _, _ := e.chat("old-slow", "", false); status != http.StatusNotFound {
		t.Errorf("a model removed by the reload: %d, want 404", status)
	}
	aBefore := a1.Seen.Load()
	time.Sleep(300 * time.Millisecond)
	if got := a1.Seen.Load() - aBefore; got != 0 {
		t.Errorf("provider a still got %d requests for live after the reload", got)
	}

	// A broken file is refused as a whole: the running configuration stays.
	writeAtomic(t, path, "providers: [{name: a, type: nonsense}]\n")
	waitFor(t, 5*time.Second, "the failed reload to be counted", func() bool {
		return strings.Contains(e.metrics(), `llmgate_config_reloads_total{result="error"} 1`)
	})

	// Back to provider a (config_poll_interval is restart-only, so the watcher keeps polling),
	// then SIGHUP, which reloads whether or not the file changed.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // the test process must survive SIGHUP whatever happens
	defer signal.Stop(hup)
	write("a", "", "-1s")
	waitFor(t, 5*time.Second, "the reload back to provider a", func() bool {
		before := a1.Seen.Load()
		time.Sleep(50 * time.Millisecond)
		return a1.Seen.Load() > before
	})
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || done.Load() < 20 {
		t.Errorf("%d of %d requests failed across the reloads", failed.Load(), done.Load())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a reload on SIGHUP", func() bool {
		return strings.Contains(e.metrics(), `llmgate_config_reloads_total{result="ok"} 3`)
	})
}

// writeAtomic replaces a file in one step. A watcher polling it must never read it half written:
// an empty file is a valid configuration (the built-in mock), which would drop every model.
func writeAtomic(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestAzureAndPresetsThroughGateway: a provider of type azure reaches its deployment URL with
// api-version and api-key (an upstream that checks them as Azure does, answering with the mock);
// the go-openai client gets its answer, stream and not, and the usage is the provider's.
func TestAzureAndPresetsThroughGateway(t *testing.T) {
	m := mock.NewHandler(mock.Options{})
	var bad atomic.Int64
	az := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dep, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/")
		dep, ep, _ := strings.Cut(dep, "/")
		if !ok || dep != "gpt4o-prod" || ep != "chat/completions" || r.URL.Query().Get("api-version") != "2024-10-21" ||
			r.Header.Get("Api-Key") != "azure-secret" || r.Header.Get("Authorization") != "" {
			bad.Add(1)
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawQuery = "/v1/chat/completions", ""
		m.ServeHTTP(w, r2)
	}))
	t.Cleanup(az.Close)
	e := newEnv(t, withRouting([]ProviderConfig{{Config: providers.Config{Name: "azure", Type: "azure", BaseURL: az.URL,
		APIKey: "azure-secret"}, APIVersion: "2024-10-21"}},
		providers.ModelConfig{Name: "gpt-4o", Deployments: []providers.DeploymentConfig{{Provider: "azure", Model: "gpt4o-prod"}}}))
	c := e.client(e.key)
	resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "gpt-4o", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil || len(resp.Choices) == 0 || resp.Choices[0].Message.Content == "" {
		t.Fatalf("non-stream through azure: %v %+v", err, resp)
	}
	stream, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: "gpt-4o", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for {
		ch, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	stream.Close()
	if text.Len() == 0 || bad.Load() != 0 {
		t.Errorf("stream through azure: %q, %d requests the upstream refused", text.String(), bad.Load())
	}
	recs := e.allUsage(2)
	provider := 0
	for _, r := range recs {
		if r.Model == "gpt-4o" && r.Status == 200 && r.UsageSource == "provider" && r.PromptTokens > 0 && r.Deployment == "azure/gpt4o-prod" {
			provider++
		}
	}
	if provider != 2 {
		t.Errorf("%d of 2 azure requests recorded with the provider's usage: %+v", provider, recs)
	}
}
