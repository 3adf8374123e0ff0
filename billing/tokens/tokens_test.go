package tokens

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The whole test binary runs with the network made unusable before anything loads: HTTP(S)_PROXY
// point at a closed port, net/http's default transport fails and counts every attempt, and
// tiktoken-go's download cache points at an empty directory. TestNoNetwork then checks that
// loading touched none of them: the encodings come from the embedded files only.
var (
	httpAttempts atomic.Int64
	cacheDir     string
	loadTime     time.Duration
	loadHeap     uint64
	newHeap      int64
	loadAlloc    uint64
	loadErrMain  error
)

type noNetwork struct{}

func (noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	httpAttempts.Add(1)
	return nil, errors.New("network access in a test: " + r.URL.String())
}

func TestMain(m *testing.M) {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		os.Setenv(k, "http://127.0.0.1:9") // discard port: nothing listens
	}
	os.Unsetenv("NO_PROXY")
	os.Unsetenv("no_proxy")
	http.DefaultTransport = noNetwork{}
	var err error
	if cacheDir, err = os.MkdirTemp("", "tiktoken-cache-*"); err != nil {
		panic(err)
	}
	os.Setenv("TIKTOKEN_CACHE_DIR", cacheDir)
	os.Setenv("DATA_GYM_CACHE_DIR", cacheDir)

	// Measure the one-time load here, before any test can trigger it.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, loadErrMain = New()
	loadTime = time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	newHeap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// Then the first count under each encoding, which loads it.
	if loadErrMain == nil {
		before = after
		start = time.Now()
		e, _ := New()
		e.Text("gpt-4o", "hi")
		e.Text("gpt-4", "hi")
		loadTime = time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		loadHeap = after.HeapAlloc - before.HeapAlloc
		loadAlloc = after.TotalAlloc - before.TotalAlloc
	}

	code := m.Run()
	os.RemoveAll(cacheDir)
	os.Exit(code)
}

func newEstimator(t testing.TB) *Estimator {
	t.Helper()
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNoNetwork(t *testing.T) {
	if loadErrMain != nil {
		t.Fatal(loadErrMain)
	}
	e := newEstimator(t)
	if got := e.Text("gpt-4o", "hello world"); got != 2 {
		t.Fatalf("Text = %d", got)
	}
	if n := httpAttempts.Load(); n != 0 {
		t.Fatalf("%d HTTP requests while loading encodings", n)
	}
	entries, err := os.ReadDir(cacheDir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("tiktoken download cache used: %v, %v", entries, err)
	}
}

// TestLoadCost: New loads no encoding — a gateway whose providers report usage never holds
// them — and the first counts load them once, for every Estimator.
func TestLoadCost(t *testing.T) {
	t.Logf("first counts under o200k_base and cl100k_base: %v; live heap +%.1f MiB after GC, %.1f MiB allocated while loading; "+
		"later calls share them", loadTime.Round(time.Millisecond), float64(loadHeap)/(1<<20), float64(loadAlloc)/(1<<20))
	if newHeap > 1<<20 {
		t.Errorf("the first New() kept %.1f MiB of live heap: it loaded the encodings before any count needed them",
			float64(newHeap)/(1<<20))
	}
	start := time.Now()
	newEstimator(t)
	if d := time.Since(start); d > 10*time.Millisecond {
		t.Errorf("second New() took %v: the encodings were loaded again", d)
	}
}

func TestEncodingFor(t *testing.T) {
	for model, want := range map[string]string{
		"gpt-4o": O200K, "gpt-4o-mini-2024-07-18": O200K, "chatgpt-4o-latest": O200K, "gpt-4.1-nano": O200K,
		"gpt-4.5-preview": O200K, "gpt-5": O200K, "gpt-5.4-mini": O200K, "gpt-6-sol": O200K, "GPT-5": O200K,
		"o1": O200K, "o1-mini": O200K, "o3": O200K, "o3-pro-2025-06-10": O200K, "o4-mini": O200K,
		"openai/gpt-4o": O200K, "gpt-oss-120b": O200K,
		"gpt-4": CL100K, "gpt-4-0613": CL100K, "gpt-4-turbo": CL100K, "gpt-3.5-turbo": CL100K,
		"text-embedding-3-small": CL100K, "claude-sonnet-4-6": CL100K, "gemini-2.5-pro": CL100K,
		"deepseek-v4-flash": CL100K, "qwen3-max": CL100K, "ollama": CL100K, "omni-moderation-latest": CL100K,
		"o": CL100K, "": CL100K,
	} {
		if got := EncodingFor(model); got != want {
			t.Errorf("EncodingFor(%q) = %s, want %s", model, got, want)
		}
	}
}

// Known counts from the OpenAI cookbook "How to count tokens with tiktoken" (§3, §5).
func TestText(t *testing.T) {
	e := newEstimator(t)
	for _, c := range []struct {
		s             string
		cl100k, o200k int64
	}{
		{"", 0, 0},
		{"hello world", 2, 2},
		{"tiktoken is great!", 6, 6},
		{"antidisestablishmentarianism", 6, 6},
		{"2 + 2 = 4", 7, 7},
		{"お誕生日おめでとう", 9, 8},
	} {
		if got := e.Text("gpt-4", c.s); got != c.cl100k {
			t.Errorf("cl100k %q = %d, want %d", c.s, got, c.cl100k)
		}
		if got := e.Text("gpt-4o", c.s); got != c.o200k {
			t.Errorf("o200k %q = %d, want %d", c.s, got, c.o200k)
		}
	}
	// Special-token text is ordinary text (and does not panic, unlike tiktoken's Encode).
	if got := e.Text("gpt-4o", "<|endoftext|>"); got < 2 {
		t.Errorf("special token text counted as %d", got)
	}
}

// Segmenting long input does not change the count of ordinary text.
func TestSegmentationIsExactForText(t *testing.T) {
	e := newEstimator(t)
	var prose, lines strings.Builder
	for i := 0; prose.Len() < 2*softSegment+100; i++ {
		fmt.Fprintf(&prose, "Sentence %d: the quick brown fox jumps over the lazy dog, again and again.\n", i)
		if i%7 == 0 {
			prose.WriteString("  Indented line with  double  spaces\tand a tab.\n\n")
		}
	}
	for i := 0; lines.Len() < 2*softSegment+100; i++ {
		// No spaces at all: only newline cuts are possible; some lines end in punctuation.
		fmt.Fprintf(&lines, "item%d\nvalue_%d.\nKey%d:\r\nx%d\n", i, i, i, i)
	}
	for name, s := range map[string]string{"prose": prose.String(), "lines": lines.String()} {
		for _, enc := range []string{"gpt-4o", "gpt-4"} {
			whole := int64(len(e.encoder(enc).EncodeOrdinary(s)))
			if got := e.Text(enc, s); got != whole {
				t.Errorf("%s %s: segmented %d, whole %d", name, enc, got, whole)
			}
		}
	}
}

// A run with no spaces is cut every maxRun bytes: bounded time, count within one token per cut.
func TestLongRunsAreBounded(t *testing.T) {
	e := newEstimator(t)
	mixed := strings.Repeat("abcdefgh0123/+", 150) // 2100 bytes, base64-like, no spaces
	whole := int64(len(e.encoder("gpt-4o").EncodeOrdinary(mixed)))
	got := e.Text("gpt-4o", mixed)
	if cuts := int64(len(mixed) / maxRun); got < whole-cuts || got > whole+cuts {
		t.Errorf("long run: %d tokens, whole %d, more than %d cuts apart", got, whole, cuts)
	}
	start := time.Now()
	// Unsegmented, each of these is one 256 KiB piece: measured 0.1 s for 16 KiB of "a" and
	// quadratic, so about 25 s each (and about 7 min for 1 MiB).
	for _, s := range []string{strings.Repeat("a", 256<<10), strings.Repeat(" ", 256<<10), strings.Repeat("é", 128<<10)} {
		if n := e.Text("gpt-4o", s); n <= 0 {
			t.Errorf("no tokens for %d bytes", len(s))
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("768 KiB of hostile text took %v", d)
	}
}

// The cookbook's §6 example: 129 prompt tokens for gpt-3.5-turbo/gpt-4 (cl100k), 124 for
// gpt-4o/gpt-4o-mini (o200k), each verified there against the API's prompt_tokens.
const cookbookChat = `{"model":"gpt-4o","messages":[
 {"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
 {"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
 {"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
 {"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
 {"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
 {"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]}`

// The cookbook's §7 example: 105 prompt tokens for gpt-3.5-turbo/gpt-4, 101 for gpt-4o/mini.
const cookbookTools = `{"messages":[
 {"role":"system","content":"You are a helpful assistant that can answer to questions about the weather."},
 {"role":"user","content":"What's the weather like in San Francisco?"}],
 "tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather in a given location",
  "parameters":{"type":"object","properties":{
   "location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
   "unit":{"type":"string","description":"The unit of temperature to return","enum":["celsius","fahrenheit"]}},
  "required":["location"]}}}]}`

func TestPromptCookbook(t *testing.T) {
	e := newEstimator(t)
	for _, c := range []struct {
		endpoint, model, body string
		want                  int64
	}{
		{"/v1/chat/completions", "gpt-3.5-turbo", cookbookChat, 129},
		{"/v1/chat/completions", "gpt-4", cookbookChat, 129},
		{"/v1/chat/completions", "gpt-4o", cookbookChat, 124},
		{"/v1/chat/completions", "gpt-4o-mini", cookbookChat, 124},
		{"/v1/chat/completions", "", cookbookChat, 124}, // model from the body
		{"", "gpt-4o", cookbookChat, 124},               // endpoint from the body
		{"/v1/chat/completions", "gpt-4", cookbookTools, 105},
		{"/v1/chat/completions", "gpt-3.5-turbo", cookbookTools, 105},
		{"chat/completions", "gpt-4o", cookbookTools, 101},
		{"/v1/chat/completions?x=1", "gpt-4o-mini", cookbookTools, 101},
	} {
		if got := e.Prompt(c.endpoint, c.model, []byte(c.body)); got != c.want {
			t.Errorf("Prompt(%q, %q) = %d, want %d", c.endpoint, c.model, got, c.want)
		}
	}
}

func TestPromptShapes(t *testing.T) {
	e := newEstimator(t)
	hw := int64(2) // "hello world" in either encoding
	msg := func(content string) string {
		return `{"messages":[{"role":"user","content":` + content + `}]}`
	}
	user := int64(1) // "user"
	for _, c := range []struct {
		name, endpoint, body string
		want                 int64
	}{
		{"chat string", "/v1/chat/completions", msg(`"hello world"`), 3 + user + hw + 3},
		{"chat text parts", "/v1/chat/completions", msg(`[{"type":"text","text":"hello world"},{"type":"text","text":"hello world"}]`), 3 + user + 2*hw + 3},
		{"chat image low", "/v1/chat/completions", msg(`[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]`), 3 + user + hw + imageTokensLow + 3},
		{"chat image default", "/v1/chat/completions", msg(`[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]`), 3 + user + imageTokensDefault + 3},
		{"chat audio part", "/v1/chat/completions", msg(`[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]`), 3 + user + 3},
		{"chat tool call", "/v1/chat/completions", `{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"hello","arguments":"hello world"}}]}]}`, 3 + 1 + 1 + hw + 3},
		{"chat no messages", "/v1/chat/completions", `{"messages":[]}`, 0},
		{"completions string", "/v1/completions", `{"prompt":"hello world"}`, hw},
		{"completions strings", "/v1/completions", `{"prompt":["hello world","hello world"],"suffix":"hello world"}`, 3 * hw},
		{"completions token ids", "/v1/completions", `{"prompt":[1,2,3]}`, 3},
		{"completions token arrays", "/v1/completions", `{"prompt":[[1,2],[3],[]]}`, 3},
		{"completions by body", "", `{"prompt":"hello world"}`, hw},
		{"embeddings", "/v1/embeddings", `{"input":"hello world"}`, hw},
		{"embeddings batch", "/v1/embeddings", `{"input":["hello world","hello world","hello world"]}`, 3 * hw},
		{"embeddings ids", "/v1/embeddings", `{"input":[[10,20,30,40]]}`, 4},
		{"responses string", "/v1/responses", `{"instructions":"hello world","input":"hello world"}`, 2 * hw},
		{"responses items", "/v1/responses", `{"input":[{"role":"user","content":[{"type":"input_text","text":"hello world"}]}]}`, 3 + user + hw + 3},
		{"invalid json", "/v1/chat/completions", `{"messages":[`, 0},
		{"empty", "/v1/embeddings", ``, 0},
	} {
		if got := e.Prompt(c.endpoint, "gpt-4o", []byte(c.body)); got != c.want {
			t.Errorf("%s: Prompt = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	e := newEstimator(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			model := []string{"gpt-4o", "gpt-4"}[g%2]
			want := []int64{124, 129}[g%2]
			for i := 0; i < 50; i++ {
				if got := e.Prompt("/v1/chat/completions", model, []byte(cookbookChat)); got != want {
					t.Errorf("%s: %d, want %d", model, got, want)
					return
				}
				if got := e.Text(model, "hello world"); got != 2 {
					t.Errorf("Text = %d", got)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// BenchmarkText reports ns per token of English prose (the estimator runs only when a provider
// gives no usage or a stream is cut, so this bounds the settlement cost of such a request).
func BenchmarkText(b *testing.B) {
	e := newEstimator(b)
	text := strings.Repeat("The gateway records one usage row per request, whatever its ending; "+
		"when the upstream reports no usage, tokens are estimated offline with tiktoken. ", 20)
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		b.Run(EncodingFor(model), func(b *testing.B) {
			n := e.Text(model, text)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Text(model, text)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/token")
		})
	}
}

func BenchmarkPrompt(b *testing.B) {
	e := newEstimator(b)
	body := []byte(cookbookChat)
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		b.Run(EncodingFor(model), func(b *testing.B) {
			n := e.Prompt("/v1/chat/completions", model, body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Prompt("/v1/chat/completions", model, body)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/token")
		})
	}
}
