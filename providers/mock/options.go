package mock

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tidwall/gjson"
)

// Options configures the simulated upstream. Zero values mean the defaults noted per field, so a
// config file or a test names only what it cares about. Each request may override them (see the
// package documentation).
type Options struct {
	// LatencyMS delays a non-stream answer, headers included: the model's thinking time.
	LatencyMS int `yaml:"latency_ms"`
	// TTFTMS delays the first chunk of a stream. The headers go out at once, as OpenAI's do, so a
	// gateway can tell time to first byte from time to first token.
	TTFTMS int `yaml:"ttft_ms"`
	// TokensPerSecond paces the stream chunks after the first; 0 sends them as fast as possible.
	TokensPerSecond float64 `yaml:"tokens_per_second"`
	// Chunks is the number of content chunks of a full answer (default 20, the benchmark's size).
	Chunks int `yaml:"chunks"`
	// TokensPerChunk is the number of completion tokens each chunk carries (default 1).
	TokensPerChunk int `yaml:"tokens_per_chunk"`
	// ErrorRate is the fraction of requests answered with an OpenAI-shaped 500, to exercise
	// retries, failover and circuit breakers.
	ErrorRate float64 `yaml:"error_rate"`
	// Seed makes the choice of failing requests reproducible: the k-th well-formed completion or
	// embeddings request of a handler fails or not as a function of (Seed, k). 0 picks a random
	// seed.
	Seed int64 `yaml:"seed"`
	// RequireKey, when set, makes the API answer 401 unless the request carries the key where
	// the format wants it: "Authorization: Bearer <RequireKey>" (OpenAI), x-api-key (Anthropic's
	// /v1/messages), x-goog-api-key (Gemini) or a Bedrock API key (Authorization: Bearer on the
	// Bedrock endpoints), so that tests prove which credential the gateway sent upstream.
	RequireKey string `yaml:"require_key"`
	// ServiceAccounts are the Google service accounts (by client_email) whose signed assertions
	// the simulated OAuth token endpoint accepts, for Vertex AI (see vertex.go). Not a config
	// key: tests and cmd/mockllm set it.
	ServiceAccounts map[string]*rsa.PublicKey `yaml:"-"`
	// TokenLifetime is how long the access tokens it mints live (default one hour).
	TokenLifetime time.Duration `yaml:"-"`
	// AWSAccessKeyID and AWSSecretAccessKey, when set, make the Bedrock endpoints verify each
	// request's SigV4 signature by recomputing it with the SDK's signer for these credentials,
	// answering 403 as AWS does when it does not match. A Bedrock API key (Authorization:
	// Bearer) must then be RequireKey.
	AWSAccessKeyID     string `yaml:"aws_access_key_id"`
	AWSSecretAccessKey string `yaml:"aws_secret_access_key"`
}

const (
	defaultChunks         = 20
	defaultTokensPerChunk = 1
	// maxChunkSetting bounds chunks and tokens_per_chunk overrides so that a request cannot make
	// the mock render an answer of unbounded size.
	maxChunkSetting = 10_000
)

// behaviour is how one request is answered: the handler's Options with the request's "mock"
// overrides applied.
type behaviour struct {
	latency, ttft, hang time.Duration
	// interval is the gap between content chunks; intervalSet tells an explicit interval_ms
	// (which wins, even when 0) from one derived from tokensPerSecond.
	interval        time.Duration
	intervalSet     bool
	tokensPerSecond float64
	chunks          int
	tokensPerChunk  int
	errorRate       float64
	status          int
	errorBody       string
	hasErrorBody    bool
	failAfter       int // -1: never
	noUsage         bool
	// seed, when hasSeed, makes this request's error draw depend on the seed alone.
	seed       uint64
	hasSeed    bool
	requireKey string
	// exception and corruptFrame shape a fail_after in the Bedrock formats (bedrock.go): the
	// exception message that ends the stream, or a message whose CRC is wrong.
	exception    string
	corruptFrame bool
}

func newBehaviour(o Options) behaviour {
	b := behaviour{
		latency:         millis(int64(o.LatencyMS)),
		ttft:            millis(int64(o.TTFTMS)),
		tokensPerSecond: max(o.TokensPerSecond, 0),
		chunks:          o.Chunks,
		tokensPerChunk:  o.TokensPerChunk,
		errorRate:       o.ErrorRate,
		failAfter:       -1,
	}
	if b.chunks <= 0 {
		b.chunks = defaultChunks
	}
	if b.tokensPerChunk <= 0 {
		b.tokensPerChunk = defaultTokensPerChunk
	}
	return b
}

// gap is the pause between two content chunks of a stream.
func (b *behaviour) gap() time.Duration {
	if b.intervalSet || b.tokensPerSecond <= 0 {
		return b.interval
	}
	return time.Duration(float64(time.Second) * float64(b.tokensPerChunk) / b.tokensPerSecond)
}

// override applies the request's "mock" object. Values are checked strictly: a test that
// misspells an override must fail loudly rather than pass against the defaults.
func (b *behaviour) override(obj gjson.Result) error {
	if !obj.IsObject() {
		return errors.New("mock must be an object")
	}
	var err error
	obj.ForEach(func(k, v gjson.Result) bool {
		err = b.set(k.Str, v)
		return err == nil
	})
	return err
}

func (b *behaviour) set(name string, v gjson.Result) error {
	switch name {
	case "error_body", "require_key", "exception":
		if v.Type != gjson.String {
			return fmt.Errorf("mock.%s must be a string", name)
		}
		if name == "require_key" {
			b.requireKey = v.Str
		} else if name == "exception" {
			b.exception = v.Str
		} else {
			b.errorBody, b.hasErrorBody = v.Str, true
		}
		return nil
	case "no_usage", "corrupt_frame":
		if !v.IsBool() {
			return fmt.Errorf("mock.%s must be a boolean", name)
		}
		if name == "no_usage" {
			b.noUsage = v.Bool()
		} else {
			b.corruptFrame = v.Bool()
		}
		return nil
	case "seed":
		if v.Type != gjson.Number {
			return errors.New("mock.seed must be a number")
		}
		b.seed, b.hasSeed = uint64(v.Int()), true
		return nil
	}
	if v.Type != gjson.Number || v.Num < 0 || math.IsInf(v.Num, 0) {
		return fmt.Errorf("mock.%s must be a non-negative number", name)
	}
	n := v.Int()
	switch name {
	case "latency_ms":
		b.latency = millis(n)
	case "ttft_ms":
		b.ttft = millis(n)
	case "hang_ms":
		b.hang = millis(n)
	case "interval_ms":
		b.interval, b.intervalSet = millis(n), true
	case "tokens_per_second":
		b.tokensPerSecond = v.Num
	case "error_rate":
		b.errorRate = v.Num
	case "chunks", "tokens_per_chunk":
		if n < 1 || n > maxChunkSetting {
			return fmt.Errorf("mock.%s must be between 1 and %d", name, maxChunkSetting)
		}
		if name == "chunks" {
			b.chunks = int(n)
		} else {
			b.tokensPerChunk = int(n)
		}
	case "fail_after":
		b.failAfter = int(min(n, math.MaxInt32))
	case "status":
		if n < 400 || n > 599 {
			return errors.New("mock.status must be between 400 and 599")
		}
		b.status = int(n)
	default:
		return fmt.Errorf("unknown mock override %q", name)
	}
	return nil
}

func millis(n int64) time.Duration {
	return time.Duration(min(max(n, 0), math.MaxInt64/int64(time.Millisecond))) * time.Millisecond
}

// call is what one request asks for, read in a single pass over the body. Its strings point into
// the request body and must not outlive the request.
type call struct {
	// model is the raw JSON string of the request's model, echoed verbatim (already escaped).
	model        string
	stream       bool
	includeUsage bool
	maxTokens    int
	promptTokens int
	// input is the embeddings input, kept for the answer which derives the vectors from it.
	input      gjson.Result
	base64     bool
	dimensions int
	// previous is a Responses request's previous_response_id.
	previous string
	// image is what an images/generations or edits request asks for (media.go).
	image imageCall
	// audio is what a transcription, translation or speech request asks for (audio.go).
	audio audioCall
	// tools is what a chat request says about tools (chat_tools.go).
	tools chatTools
	b     behaviour
}

// parseCall reads the fields of body that shape the answer; its errors are meant for the client.
// The body must be a JSON object with a string model and the endpoint's main field, as OpenAI
// requires; this also lets gateway tests catch a body the gateway broke while rewriting it.
func parseCall(ep endpoint, body string, base behaviour) (call, error) {
	c := call{b: base}
	if !gjson.Valid(body) {
		return c, errors.New("the body is not valid JSON")
	}
	root := gjson.Parse(body)
	if !root.IsObject() {
		return c, errors.New("the body must be a JSON object")
	}
	var err error
	var hasMain bool
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if v.Type == gjson.String {
				c.model = v.Raw
			}
		case "stream":
			c.stream = v.Type == gjson.True
		case "stream_options":
			c.includeUsage = v.Get("include_usage").Type == gjson.True
		case "max_tokens", "max_completion_tokens", "max_output_tokens":
			if n := int(min(v.Int(), math.MaxInt32)); n > 0 && (c.maxTokens == 0 || n < c.maxTokens) {
				c.maxTokens = n
			}
		case "messages":
			hasMain = hasMain || (ep == epChat && v.IsArray())
			c.promptTokens += messageTokens(v)
			c.tools.readLast(v)
		case "tools":
			if ep == epChat {
				c.tools.readTools(v)
			}
		case "tool_choice":
			c.tools.readChoice(v)
		case "parallel_tool_calls":
			c.tools.noParallel = v.Type == gjson.False
		case "prompt":
			hasMain = hasMain || ep == epText || (ep == epImages && v.Type == gjson.String)
			c.promptTokens += inputTokens(v)
		case "input":
			hasMain = hasMain || ep == epEmbed || ep == epResponses || ep == epModerations || ep == epSpeech
			c.input = v
			if ep == epResponses {
				c.promptTokens += responsesInputTokens(v)
			}
		case "instructions":
			if ep == epResponses && v.Type == gjson.String {
				c.promptTokens += 3 + words(v.Str)
			}
		case "previous_response_id":
			c.previous = v.Str
		case "encoding_format":
			c.base64 = v.Str == "base64"
		case "n":
			c.image.n = int(min(max(v.Int(), 0), maxImages))
		case "size":
			c.image.size = v.Str
		case "quality":
			c.image.quality = v.Str
		case "partial_images":
			c.image.partials = int(v.Int())
		case "response_format":
			c.image.b64 = v.Str == "b64_json"
		case "dimensions":
			c.dimensions = int(min(max(v.Int(), 0), maxDimensions))
		case "mock":
			err = c.b.override(v)
		}
		return err == nil
	})
	switch {
	case err != nil:
		return c, err
	case c.model == "":
		return c, errors.New("you must provide a model parameter")
	case !hasMain:
		return c, fmt.Errorf("missing required parameter %q", ep.mainField())
	}
	return c, nil
}

// messageTokens counts the prompt tokens of a chat "messages" array (see the package doc).
func messageTokens(messages gjson.Result) int {
	n := 0
	messages.ForEach(func(_, m gjson.Result) bool {
		n += 3
		content := m.Get("content")
		if content.IsArray() {
			content.ForEach(func(_, part gjson.Result) bool {
				n += words(part.Get("text").Str)
				return true
			})
		} else {
			n += words(content.Str)
		}
		return true
	})
	return n
}

// inputTokens counts a prompt or embeddings input: words of strings, one token per integer of a
// token array, summed over arrays.
func inputTokens(v gjson.Result) int {
	switch {
	case v.Type == gjson.String:
		return words(v.Str)
	case v.Type == gjson.Number:
		return 1
	case v.IsArray():
		n := 0
		v.ForEach(func(_, item gjson.Result) bool {
			n += inputTokens(item)
			return true
		})
		return n
	}
	return 0
}

// words counts maximal runs of non-whitespace (ASCII whitespace only, so it never decodes UTF-8).
func words(s string) int {
	n := 0
	inWord := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			inWord = false
		default:
			if !inWord {
				n++
				inWord = true
			}
		}
	}
	return n
}
