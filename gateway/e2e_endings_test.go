package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/messages"
	"github.com/llmgate/llmgate/providers/responses"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// The metering endings matrix of the endpoints beside chat: for /v1/responses and /v1/messages
// (passthrough and translated, streamed and whole), /v1/images/generations and /v1/moderations, every way a
// request can end — complete, the client leaving, the upstream breaking off, no usage from the
// upstream, an upstream error status, an upstream timeout — leaves exactly one usage record with
// the status, tokens, usage source, units and cost of that ending, and the caller's quota settled:
// the concurrency slot free and the minute's tokens the record's, not the reservation.

// scriptedUpstream is an OpenAI-format upstream whose ending is chosen by a word in the request
// ("ending:<name>" in the prompt or input, which both the Responses body and its chat
// translation carry). It answers chat completions, the Responses API (the recorded fixture),
// images and moderations, each streamed (where the endpoint streams) or whole.
type scriptedUpstream struct {
	srv *httptest.Server
	// stalled counts the answers that stopped midway and wait for the request to end.
	stalled atomic.Int64
}

// Endings a scriptedUpstream plays.
const (
	endComplete = "complete" // the whole answer, with usage
	endNoUsage  = "nousage"  // the whole answer, without usage
	endUpCut    = "upcut"    // part of the answer, then the connection drops
	endStall    = "stall"    // part of the answer, then nothing until the request ends
	endHang     = "hang"     // nothing at all until the request ends
	endErrEvent = "errevent" // part of a stream, then an error event, then the end of the body
	end500      = "status500"
	end400      = "status400"
)

// scriptedCutEvents is how many events of a stream the upstream sends before it cuts or stalls:
// for the Responses fixture, up to its second text delta; for chat, the role chunk and two
// content chunks; for an image stream, its two partial images; for Messages, up to the second
// text delta.
var scriptedCutEvents = map[string]int{"/v1/responses": 8, "/v1/chat/completions": 3, "/v1/images/generations": 2, "/v1/messages": 5}

// scriptedMessage is the Messages API's answer of the scripted upstream, streamed (with a ping,
// as Anthropic sends one) and whole; without usage when noUsage is set.
func scriptedMessage(noUsage bool) (events [][]byte, doc []byte) {
	startUsage, deltaUsage := `,"usage":{"input_tokens":9,"cache_creation_input_tokens":1,"cache_read_input_tokens":2,"output_tokens":1}`, `,"usage":{"output_tokens":3}`
	if noUsage {
		startUsage, deltaUsage = "", ""
	}
	ev := func(name, data string) []byte { return []byte("event: " + name + "\ndata: " + data + "\n\n") }
	events = [][]byte{
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-up","stop_reason":null,"stop_sequence":null`+startUsage+`}}`),
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
		ev("ping", `{"type": "ping"}`),
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"one"}}`),
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" two"}}`),
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" three"}}`),
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null}`+deltaUsage+`}`),
		ev("message_stop", `{"type":"message_stop"}`),
	}
	doc = []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"claude-up","content":[{"type":"text","text":"one two three"}],"stop_reason":"end_turn","stop_sequence":null`)
	if !noUsage {
		doc = append(doc, `,"usage":{"input_tokens":9,"cache_creation_input_tokens":1,"cache_read_input_tokens":2,"output_tokens":3}`...)
	}
	return events, append(doc, '}')
}

func newScriptedUpstream(t *testing.T) *scriptedUpstream {
	t.Helper()
	fixture, err := os.ReadFile("testdata/responses/text.sse")
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile("testdata/responses/text.json")
	if err != nil {
		t.Fatal(err)
	}
	var respEvents [][]byte
	for _, ev := range bytes.SplitAfter(fixture, []byte("\n\n")) {
		if len(ev) > 0 {
			respEvents = append(respEvents, ev)
		}
	}
	s := &scriptedUpstream{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ending := endComplete
		if m := bytes.Index(body, []byte("ending:")); m >= 0 {
			rest := body[m+len("ending:"):]
			if n := bytes.IndexFunc(rest, func(c rune) bool { return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') }); n >= 0 {
				ending = string(rest[:n])
			}
		}
		stall := func() {
			s.stalled.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}
		switch ending {
		case endHang:
			stall()
			return
		case end500, end400:
			code := map[string]int{end500: 500, end400: 400}[ending]
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = io.WriteString(w, `{"error":{"message":"scripted failure","type":"server_error","param":null,"code":null}}`)
			return
		}
		stream := gjson.GetBytes(body, "stream").Bool()
		var events [][]byte // a stream's events, each ending in its blank line
		var doc []byte      // a whole answer
		switch r.URL.Path {
		case "/v1/responses":
			events, doc = respEvents, whole
			if ending == endNoUsage {
				last, _ := sjson.DeleteBytes(bytes.TrimPrefix(bytes.TrimSpace(respEvents[len(respEvents)-1]), []byte("event: response.completed\ndata: ")), "response.usage")
				events = append(append([][]byte(nil), respEvents[:len(respEvents)-1]...), []byte("event: response.completed\ndata: "+string(last)+"\n\n"))
				doc, _ = sjson.DeleteBytes(whole, "usage")
			}
		case "/v1/chat/completions":
			chunk := func(delta, finish string) []byte {
				c := `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}`
				return []byte("data: " + c + "\n\n")
			}
			events = [][]byte{chunk(`{"role":"assistant","content":""}`, "null"), chunk(`{"content":"one"}`, "null"),
				chunk(`{"content":" two"}`, "null"), chunk(`{"content":" three"}`, "null"), chunk(`{}`, `"stop"`)}
			if ending != endNoUsage {
				events = append(events, []byte(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":2}}}`+"\n\n"))
			}
			events = append(events, []byte("data: [DONE]\n\n"))
			doc = []byte(`{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"one two three"},"finish_reason":"stop"}]`)
			if ending != endNoUsage {
				doc = append(doc, `,"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":2}}`...)
			}
			doc = append(doc, '}')
		case "/v1/messages":
			events, doc = scriptedMessage(ending == endNoUsage)
		case "/v1/images/generations":
			partial := func(i int) []byte {
				return []byte(`event: image_generation.partial_image` + "\n" + `data: {"type":"image_generation.partial_image","b64_json":"iVBO","partial_image_index":` +
					strconv.Itoa(i) + `,"created_at":1,"size":"1024x1024","quality":"medium","background":"opaque","output_format":"png"}` + "\n\n")
			}
			done := `{"type":"image_generation.completed","b64_json":"iVBORw0KGgo=","created_at":1,"size":"1024x1024","quality":"medium","background":"opaque","output_format":"png"`
			if ending != endNoUsage {
				done += `,"usage":{"input_tokens":7,"output_tokens":1056,"total_tokens":1063}`
			}
			events = [][]byte{partial(0), partial(1), []byte("event: image_generation.completed\ndata: " + done + "}\n\n")}
			doc = []byte(`{"created":1,"data":[{"b64_json":"iVBORw0KGgo="}],"size":"1024x1024","quality":"medium"`)
			if ending != endNoUsage {
				doc = append(doc, `,"usage":{"input_tokens":7,"output_tokens":1056,"total_tokens":1063}`...)
			}
			doc = append(doc, '}')
		case "/v1/moderations":
			doc = []byte(`{"id":"modr-1","model":"omni-moderation-latest","results":[{"flagged":false,"categories":{"violence":false},"category_scores":{"violence":0.0001}}]}`)
		default:
			http.NotFound(w, r)
			return
		}
		if stream && events != nil {
			w.Header().Set("Content-Type", "text/event-stream")
			for i, ev := range events {
				if (ending == endUpCut || ending == endStall || ending == endErrEvent) && i == scriptedCutEvents[r.URL.Path] {
					if ending == endErrEvent && r.URL.Path == "/v1/messages" {
						_, _ = io.WriteString(w, "event: error\n"+`data: {"type":"error","error":{"type":"overloaded_error","message":"scripted failure"}}`+"\n\n")
					} else if ending == endErrEvent && r.URL.Path != "/v1/chat/completions" {
						_, _ = io.WriteString(w, `event: error`+"\n"+`data: {"type":"error","code":"server_error","message":"scripted failure","param":null,"sequence_number":8}`+"\n\n")
					} else if ending == endErrEvent {
						_, _ = io.WriteString(w, `data: {"error":{"message":"scripted failure","type":"server_error","param":null,"code":null}}`+"\n\n")
					}
					break
				}
				_, _ = w.Write(ev)
				w.(http.Flusher).Flush()
			}
		} else {
			// Whole: the length of the whole answer is announced, and only half is sent when the
			// ending cuts or stalls it.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
			if ending == endUpCut || ending == endStall {
				_, _ = w.Write(doc[:len(doc)/2])
				w.(http.Flusher).Flush()
			} else {
				_, _ = w.Write(doc)
				return
			}
		}
		switch ending {
		case endUpCut:
			panic(http.ErrAbortHandler) // drops the connection
		case endStall:
			stall()
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// endingsPrices: token prices for the Responses models, token and image prices for the image
// model; the moderation model is unpriced (free).
var (
	endingsTokenPrice = billing.Price{Model: "resp-up", InputPerM: 2_000_000, OutputPerM: 8_000_000, CachedInputPerM: 500_000}
	endingsChatPrice  = billing.Price{Model: "chat-up", InputPerM: 1_000_000, OutputPerM: 4_000_000, CachedInputPerM: 250_000}
	endingsMsgPrice   = billing.Price{Model: "claude-up", InputPerM: 3_000_000, OutputPerM: 15_000_000, CachedInputPerM: 300_000}
	endingsImagePrice = billing.Price{Model: "gpt-image-1", InputPerM: 5_000_000, OutputPerM: 40_000_000, Images: map[string]int64{"default": 42_000}}
)

// endingsEnv routes, all to one scripted upstream with short attempt timeouts:
//
//	pass → script/resp-up (an openai-type deployment: the Responses API passed through)
//	tran → scriptchat/chat-up (a chat-only deployment: the Responses API translated)
//	img  → script/gpt-image-1, mod → script/omni-moderation-latest
//	msgpass → scriptclaude/claude-up (an anthropic-type deployment: the Messages API passed through)
//	msgtran → scriptchat/chat-up (the Messages API translated)
//
// Users of tier "metered" count tokens per minute and concurrency, so both show in /v1/usage.
func endingsEnv(t *testing.T) (*env, *scriptedUpstream) {
	t.Helper()
	up := newScriptedUpstream(t)
	timeouts := providers.Timeouts{FirstByte: 1500 * time.Millisecond, Idle: 2 * time.Second}
	dep := func(provider, model string) []providers.DeploymentConfig {
		// A breaker that never opens here: the matrix fails deployments on purpose.
		return []providers.DeploymentConfig{{Provider: provider, Model: model, Timeouts: timeouts,
			Breaker: providers.BreakerConfig{ConsecutiveFailures: 1000}}}
	}
	qo := quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "metered": {TPM: 10_000_000, Concurrent: 5}}}
	claude, err := anthropic.New(anthropic.Options{BaseURL: up.srv.URL, Outbound: loopback})
	e := newEnv(t, func(c *envConfig) { c.quota = &qo }, withPrices(endingsTokenPrice, endingsChatPrice, endingsImagePrice, endingsMsgPrice),
		withRouting([]namedProvider{openaiProvider("script", up.srv.URL), chatOnlyProvider("scriptchat", up.srv.URL, ""), {"scriptclaude", claude, err}},
			providers.ModelConfig{Name: "msgpass", Deployments: dep("scriptclaude", "claude-up")},
			providers.ModelConfig{Name: "msgtran", Deployments: withID(dep("scriptchat", "chat-up"), "msgtran-chat-up")},
			providers.ModelConfig{Name: "pass", Deployments: dep("script", "resp-up")},
			providers.ModelConfig{Name: "tran", Deployments: dep("scriptchat", "chat-up")},
			providers.ModelConfig{Name: "img", Deployments: dep("script", "gpt-image-1")},
			providers.ModelConfig{Name: "mod", Deployments: dep("script", "omni-moderation-latest")}))
	return e, up
}

// withID names the deployment of ds: two models on the same provider and upstream model would
// otherwise share one deployment id, and with it one breaker and one row in /v1/providers.
func withID(ds []providers.DeploymentConfig, id string) []providers.DeploymentConfig {
	ds[0].ID = id
	return ds
}

// ending is one row of the matrix: a request, how the client treats it, and the record expected.
type ending struct {
	name   string
	path   string
	body   string
	stream bool
	// clientCut: the client leaves once the upstream has stalled (after the deltas for a stream).
	clientCut bool
	status    int    // the record's status
	source    string // the record's usage_source
	// provider is the usage the upstream reports, when source is "provider"; otherwise the tokens
	// are the tokenizer's count of the prompt and of the answer text the client was sent.
	provider billing.Usage
	units    int64 // images
	// cost: "tokens" (the usage at the model's token prices), "image" (per image), "free" (zero),
	// "" (none: nothing was delivered).
	cost string
}

func TestMeteringEndings(t *testing.T) {
	e, up := endingsEnv(t)
	est, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	respUsage := billing.Usage{Prompt: 12, Completion: 9, Cached: 3, Reasoning: 5}
	chatUsage := billing.Usage{Prompt: 11, Completion: 3, Cached: 2}
	imgUsage := billing.Usage{Prompt: 7, Completion: 1056}
	resp := func(model, ending string, stream bool) string {
		b := `{"model":"` + model + `","input":"please ending:` + ending + ` now","max_output_tokens":64`
		if stream {
			b += `,"stream":true`
		}
		return b + "}"
	}
	msg := func(model, ending string, stream bool) string {
		b := `{"model":"` + model + `","max_tokens":64,"messages":[{"role":"user","content":"please ending:` + ending + ` now"}]`
		if stream {
			b += `,"stream":true`
		}
		return b + "}"
	}
	var cases []ending
	for _, fam := range []struct {
		model, path string
		body        func(model, ending string, stream bool) string
		usage       billing.Usage
	}{
		{"pass", "/responses", resp, respUsage},
		{"tran", "/responses", resp, chatUsage},
		{"msgpass", "/messages", msg, billing.Usage{Prompt: 12, Completion: 3, Cached: 2}},
		{"msgtran", "/messages", msg, chatUsage},
	} {
		for _, stream := range []bool{true, false} {
			kind := fam.model + map[bool]string{true: " stream", false: " whole"}[stream]
			row := func(name, end string, clientCut bool, status int, source, cost string) ending {
				c := ending{name: kind + " " + name, path: fam.path, body: fam.body(fam.model, end, stream), stream: stream,
					clientCut: clientCut, status: status, source: source, cost: cost}
				if source == "provider" {
					c.provider = fam.usage
				}
				return c
			}
			cases = append(cases,
				row("complete", endComplete, false, 200, "provider", "tokens"),
				row("no usage", endNoUsage, false, 200, "estimated", "tokens"),
				row("upstream 500", end500, false, 502, "", ""),
				row("upstream 400", end400, false, 400, "", ""),
				row("first byte timeout", endHang, false, 504, "", ""))
			if stream {
				cases = append(cases,
					row("client cut", endStall, true, 499, "partial", "tokens"),
					row("upstream cut", endUpCut, false, 502, "partial", "tokens"),
					row("upstream error event", endErrEvent, false, 502, "partial", "tokens"),
					row("idle timeout", endStall, false, 504, "partial", "tokens"))
			} else {
				cases = append(cases,
					row("client cut mid-body", endStall, true, 499, "", ""),
					row("upstream cut mid-body", endUpCut, false, 502, "", ""),
					row("idle timeout mid-body", endStall, false, 504, "", ""))
			}
		}
	}
	img := func(end string) string { return `{"model":"img","prompt":"a lighthouse ending:` + end + ` at dusk"}` }
	imgStream := func(end string) string {
		return `{"model":"img","prompt":"a lighthouse ending:` + end + ` at dusk","stream":true,"partial_images":2}`
	}
	// A streamed image is metered from its completed event's usage; cut before it, the record is
	// partial and costs the estimated prompt at the token prices, as a cut chat stream does.
	cases = append(cases,
		ending{name: "images stream complete", path: "/images/generations", body: imgStream(endComplete), stream: true, status: 200, source: "provider", provider: imgUsage, units: 1, cost: "tokens"},
		ending{name: "images stream no usage", path: "/images/generations", body: imgStream(endNoUsage), stream: true, status: 200, source: "estimated", units: 1, cost: "image"},
		ending{name: "images stream client cut", path: "/images/generations", body: imgStream(endStall), stream: true, clientCut: true, status: 499, source: "partial", cost: "tokens"},
		ending{name: "images stream upstream cut", path: "/images/generations", body: imgStream(endUpCut), stream: true, status: 502, source: "partial", cost: "tokens"},
		ending{name: "images stream upstream error event", path: "/images/generations", body: imgStream(endErrEvent), stream: true, status: 502, source: "partial", cost: "tokens"},
		ending{name: "images stream idle timeout", path: "/images/generations", body: imgStream(endStall), stream: true, status: 504, source: "partial", cost: "tokens"},
		ending{name: "images stream upstream 500", path: "/images/generations", body: imgStream(end500), stream: true, status: 502},
	)
	mod := func(end string) string { return `{"model":"mod","input":"hello ending:` + end + ` there"}` }
	cases = append(cases,
		ending{name: "images complete", path: "/images/generations", body: img(endComplete), status: 200, source: "provider", provider: imgUsage, units: 1, cost: "tokens"},
		ending{name: "images no usage", path: "/images/generations", body: img(endNoUsage), status: 200, source: "estimated", units: 1, cost: "image"},
		ending{name: "images client cut mid-body", path: "/images/generations", body: img(endStall), clientCut: true, status: 499},
		ending{name: "images upstream cut mid-body", path: "/images/generations", body: img(endUpCut), status: 502},
		ending{name: "images upstream 500", path: "/images/generations", body: img(end500), status: 502},
		ending{name: "images upstream 400", path: "/images/generations", body: img(end400), status: 400},
		ending{name: "images first byte timeout", path: "/images/generations", body: img(endHang), status: 504},
		ending{name: "moderations complete", path: "/moderations", body: mod(endComplete), status: 200, source: "estimated", cost: "free"},
		ending{name: "moderations client cut mid-body", path: "/moderations", body: mod(endStall), clientCut: true, status: 499},
		ending{name: "moderations upstream cut mid-body", path: "/moderations", body: mod(endUpCut), status: 502},
		ending{name: "moderations upstream 500", path: "/moderations", body: mod(end500), status: 502},
		ending{name: "moderations upstream 400", path: "/moderations", body: mod(end400), status: 400},
		ending{name: "moderations first byte timeout", path: "/moderations", body: mod(endHang), status: 504},
	)

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := "endings-" + strconv.Itoa(i)
			k := e.newKey(keySpec{Name: user, UserID: user, Tier: "metered"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stalledBefore := up.stalled.Load()
			leave := func() {
				waitFor(t, 5*time.Second, "the upstream to stall", func() bool { return up.stalled.Load() > stalledBefore })
				cancel()
			}
			delivered := ""
			if tc.clientCut && !tc.stream {
				// A whole answer has not begun when the client leaves: no answer reaches it.
				go leave()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.baseURL+tc.path, strings.NewReader(tc.body))
				req.Header.Set("Authorization", "Bearer "+k.Key)
				if res, err := e.http.Do(req); err == nil {
					res.Body.Close()
					t.Fatalf("the client left, yet it got an answer: HTTP %d", res.StatusCode)
				}
			} else {
				delivered = readEnding(t, e.post(ctx, tc.path, k.Key, []byte(tc.body)), tc, leave)
			}
			r := e.recordOfKey(k.ID)
			if r.Status != tc.status || r.UsageSource != tc.source || r.Endpoint != strings.TrimPrefix(tc.path, "/") {
				t.Errorf("record: status %d source %q endpoint %q (error %q), want %d %q", r.Status, r.UsageSource, r.Endpoint, r.ErrorType, tc.status, tc.source)
			}
			upstreamModel := r.UpstreamModel
			want := tc.provider
			switch tc.source {
			case "estimated", "partial":
				prompt := est.Prompt(strings.TrimPrefix(tc.path, "/"), upstreamModel, []byte(tc.body))
				if strings.HasPrefix(tc.body, `{"model":"tran"`) {
					chat, _, err := responses.ToChat([]byte(tc.body), responses.Options{})
					if err != nil {
						t.Fatal(err)
					}
					prompt = est.Prompt("chat/completions", upstreamModel, chat)
				}
				if tc.path == "/messages" { // counted as its chat translation, passed through or not
					chat, _, err := messages.ToChat([]byte(tc.body), messages.Options{})
					if err != nil {
						t.Fatal(err)
					}
					prompt = est.Prompt("chat/completions", upstreamModel, chat)
				}
				want = billing.Usage{Prompt: prompt, Completion: est.Text(upstreamModel, delivered)}
			case "":
				want = billing.Usage{}
			}
			if tc.source == "partial" && strings.HasPrefix(tc.body, `{"model":"msgpass"`) {
				// Anthropic's message_start counted the input (and said 1 output token so far): the
				// record keeps the input and counts the output delivered.
				want = billing.Usage{Prompt: 12, Cached: 2, Completion: max(1, est.Text(upstreamModel, delivered))}
			}
			if got := (billing.Usage{Prompt: r.PromptTokens, Completion: r.CompletionTokens, Cached: r.CachedTokens, Reasoning: r.ReasoningTokens}); got != want {
				t.Errorf("tokens %+v, want %+v (answer delivered %q)", got, want, delivered)
			}
			if r.Units != tc.units || (tc.units > 0 && r.Unit != "image") {
				t.Errorf("units %d %q, want %d", r.Units, r.Unit, tc.units)
			}
			var wantCost *int64
			switch tc.cost {
			case "tokens":
				p := map[string]billing.Price{"resp-up": endingsTokenPrice, "chat-up": endingsChatPrice, "gpt-image-1": endingsImagePrice, "claude-up": endingsMsgPrice}[upstreamModel]
				c, err := billing.Cost(p, want)
				if err != nil {
					t.Fatal(err)
				}
				wantCost = &c
			case "image":
				c := endingsImagePrice.Images["default"] * 1_000_000
				wantCost = &c
			case "free":
				wantCost = new(int64)
			}
			if (wantCost == nil) != (r.CostPicoUSD == nil) || (wantCost != nil && *wantCost != *r.CostPicoUSD) {
				t.Errorf("cost %s, want %s", picoString(r.CostPicoUSD), picoString(wantCost))
			}
			// The quota: the slot is free, and the minute counts the record's tokens.
			u := e.userQuota(k.Key, "user/"+user)
			if u.Concurrent != 0 || u.TokensMinute != r.PromptTokens+r.CompletionTokens {
				t.Errorf("quota after the request: %d concurrent, %d tokens this minute; want 0 and %d", u.Concurrent, u.TokensMinute,
					r.PromptTokens+r.CompletionTokens)
			}
			// Exactly one record for the request, whatever the ending.
			n := 0
			for _, rec := range e.allUsage(0) {
				if rec.KeyID == k.ID && rec.Endpoint != "usage" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d records for the key's one request, want 1", n)
			}
		})
	}
}

// readEnding reads an answer as the row's client does and returns the answer text it was sent
// (for a stream, the text deltas; error events are not answer). A client that cuts calls leave
// once the stream has brought its deltas, or at once for a whole answer, and stops reading.
func readEnding(t *testing.T, res *http.Response, tc ending, leave func()) string {
	t.Helper()
	defer res.Body.Close()
	if !tc.stream {
		b, _ := io.ReadAll(res.Body)
		var text strings.Builder
		if res.StatusCode == http.StatusOK && tc.path == "/responses" {
			for _, part := range gjson.GetBytes(b, "output.#.content|@flatten").Array() {
				text.WriteString(part.Get("text").Str)
			}
		}
		if res.StatusCode == http.StatusOK && tc.path == "/messages" {
			for _, part := range gjson.GetBytes(b, "content").Array() {
				text.WriteString(part.Get("text").Str)
			}
		}
		return text.String()
	}
	var text strings.Builder
	deltas := 0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		switch typ := gjson.Get(data, "type").Str; {
		case !ok:
			continue
		case typ == "response.output_text.delta":
			text.WriteString(gjson.Get(data, "delta").Str)
		case strings.HasSuffix(typ, ".partial_image"): // a partial image counts, but is no text
		case typ == "content_block_delta":
			text.WriteString(gjson.Get(data, "delta.text").Str)
		default:
			continue
		}
		if deltas++; deltas == 2 && tc.clientCut {
			leave()
			return text.String()
		}
	}
	return text.String()
}

// recordOfKey waits for the usage record of a key's request, the key having made one.
func (e *env) recordOfKey(keyID string) store.UsageRecord {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := e.st.ListUsage(context.Background(), store.UsageFilter{KeyID: keyID, Limit: 10})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(recs) > 0 {
			return recs[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no usage record for key %s", keyID)
	return store.UsageRecord{}
}

// userQuota reads a subject's current consumption from GET /v1/usage with key.
func (e *env) userQuota(key, subject string) quota.Usage {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+"/usage", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Quota []struct {
			Subject string       `json:"subject"`
			Used    *quota.Usage `json:"used"`
		} `json:"quota"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatal(err)
	}
	for _, q := range out.Quota {
		if q.Subject == subject && q.Used != nil {
			return *q.Used
		}
	}
	e.t.Fatalf("no quota use of %s in /v1/usage: %+v", subject, out.Quota)
	return quota.Usage{}
}

func picoString(p *int64) string {
	if p == nil {
		return "none"
	}
	return billing.FormatPico64(*p)
}
