// Package tokens estimates token counts offline with tiktoken, for the requests whose provider
// reported no usage (an upstream without include_usage, a stream cut short): the usage record is
// then marked "estimated" or "partial" instead of being billed as $0.
//
// Offline: the BPE ranks come from github.com/pkoukk/tiktoken-go-loader, which embeds the
// .tiktoken files in the binary (go:embed) and never opens a URL — its loader only takes the base
// name of the URL tiktoken-go asks for and reads it from the embedded FS. tiktoken-go's default
// loader would instead download from openaipublic.blob.core.windows.net on first use and cache
// under $TIKTOKEN_CACHE_DIR or the temp dir; a gateway must not do that at run time.
//
// Counts are exact tiktoken counts for OpenAI models of the same encoding, and an estimate for
// everything else: other providers use their own tokenizers (cl100k is used as a proxy), and
// request framing (message overhead, tools, images) follows OpenAI's published recipe.
package tokens

import (
	"strings"
	"sync"
	"unicode/utf8"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Encoding names.
const (
	O200K  = "o200k_base"  // gpt-4o, gpt-4.1, gpt-4.5, gpt-5.x, gpt-6, o1/o3/o4
	CL100K = "cl100k_base" // gpt-4, gpt-3.5, text-embedding-*, and the proxy for other providers
)

// Estimator counts tokens. It is safe for concurrent use: the encoders are read-only after
// loading (tiktoken-go's CoreBPE holds maps and regexp2 patterns, both safe for concurrent
// readers).
type Estimator struct {
	o200k, cl100k *encoding
}

// encoding is one BPE encoding, loaded on its first use and then shared by every Estimator of
// the process.
type encoding struct {
	name string
	once sync.Once
	enc  *tiktoken.Tiktoken // nil when loading failed
}

var (
	loaderOnce           sync.Once
	sharedO200K, sharedC = &encoding{name: O200K}, &encoding{name: CL100K}
)

// New returns an Estimator. It loads nothing: each encoding is loaded when a count first needs
// it — measured on this 2-core machine (TestLoadCost): 0.3–1 s and, for o200k_base and
// cl100k_base together, 69 MiB allocated while parsing and about 34 MiB of heap kept live. Most
// requests carry the provider's usage and never need a count, so a gateway that does not count
// does not hold them (a third of its idle memory). Every Estimator shares the encodings once
// loaded. The embedded BPE files add about 7 MB to the binary (the loader embeds all four
// encodings; two are used).
//
// tiktoken.SetBpeLoader is a process-global in tiktoken-go (a plain package variable, read when an
// encoding is first loaded, with no lock), so it is called exactly once, inside a sync.Once, here
// in New, before anything can be loaded through an Estimator. Nothing else in llmgate may call
// tiktoken-go directly: code that did so before New would load with the downloading default
// loader, and the library caches encodings process-wide.
func New() (*Estimator, error) {
	loaderOnce.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	return &Estimator{o200k: sharedO200K, cl100k: sharedC}, nil
}

// get returns the encoder, loading it on first use. The files are embedded in the binary, so
// loading fails only for a broken build (which this package's tests catch: their counts would
// be off); counts then fall back to an estimate from the length (count), since a usage record is
// better estimated roughly than not at all.
func (e *encoding) get() *tiktoken.Tiktoken {
	e.once.Do(func() {
		if enc, err := tiktoken.GetEncoding(e.name); err == nil {
			e.enc = enc
		}
	})
	return e.enc
}

// EncodingFor names the encoding Text uses for model: o200k_base for OpenAI's gpt-4o, gpt-4.1,
// gpt-4.5, gpt-5*, gpt-6*, chatgpt-4o, gpt-oss and o-series (o1, o3, o4…) models, cl100k_base
// for everything else — older OpenAI models (gpt-4, gpt-3.5, embeddings) exactly, and as the
// estimate for other providers, whose tokenizers are not public or not shipped (Claude, Gemini,
// Qwen, GLM, Kimi, ERNIE; cl100k is within tens of percent of them on English text).
// A "provider/" prefix ("openai/gpt-4o") is ignored.
func EncodingFor(model string) string {
	m := strings.ToLower(model)
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	for _, p := range []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-6", "gpt-oss"} {
		if strings.HasPrefix(m, p) {
			return O200K
		}
	}
	// o-series: "o1", "o3-mini", "o4-mini-2025-04-16"… but not "ollama-…" or "omni".
	if len(m) >= 2 && m[0] == 'o' && m[1] >= '1' && m[1] <= '9' && (len(m) == 2 || m[2] == '-') {
		return O200K
	}
	return CL100K
}

func (e *Estimator) encoder(model string) *tiktoken.Tiktoken {
	if EncodingFor(model) == O200K {
		return e.o200k.get()
	}
	return e.cl100k.get()
}

// Text returns the number of tokens of s under model's encoding (EncodingFor). Special-token
// text such as "<|endoftext|>" is counted as ordinary text, as the API does for user content.
func (e *Estimator) Text(model, s string) int64 {
	return count(e.encoder(model), s)
}

// Bounds that keep counting linear in the input (see count).
const (
	// maxRun is the longest run of non-space (or of space) bytes encoded as one piece.
	maxRun = 256
	// softSegment is the size after which long text is split at the next word boundary, so that
	// no single call to the encoder builds a huge rune slice and match list.
	softSegment = 32 << 10
)

// count encodes s in segments and sums the token counts.
//
// Why segments: tiktoken-go's byte-pair merge is quadratic in the length of a regex piece, and a
// piece can be as long as a run without spaces ("aaaa…", a base64 blob, 1 MB of spaces). Measured
// here: 16 KiB of "a" takes 0.1 s as one piece, so 1 MiB would take about 7 minutes and a 16 MiB
// request body more than a day. Runs longer than maxRun bytes are therefore cut every maxRun
// bytes (at a UTF-8 boundary), which changes the count by at most about one token per cut (< 1%
// for such text). Ordinary text is cut only every softSegment bytes and only where tiktoken's
// pre-tokenizer splits anyway (safeCut), so its count is the unsegmented count (exactly, next to
// ASCII whitespace; a Unicode space beside a cut may shift one token).
func count(enc *tiktoken.Tiktoken, s string) int64 {
	if enc == nil { // the encoding did not load (encoding.get)
		return int64(len(s)+3) / 4
	}
	var n int64
	start, runStart := 0, 0
	for i := 1; i < len(s); i++ {
		prevSpace, space := isSpace(s[i-1]), isSpace(s[i])
		if prevSpace != space {
			runStart = i
			if i-start >= softSegment && safeCut(s, i) {
				n += int64(len(enc.EncodeOrdinary(s[start:i])))
				start = i
			}
			continue
		}
		if i-runStart >= maxRun && utf8.RuneStart(s[i]) {
			n += int64(len(enc.EncodeOrdinary(s[start:i])))
			start, runStart = i, i
		}
	}
	if start < len(s) {
		n += int64(len(enc.EncodeOrdinary(s[start:])))
	}
	return n
}

// safeCut reports whether tiktoken's pre-tokenizer (cl100k and o200k patterns) always starts a
// piece at s[i], so encoding s[:i] and s[i:] separately gives exactly the tokens of s: true for a
// single ' ' between two non-space bytes (the space begins the next word's piece), and for a
// single '\n' after a letter or digit and before a non-space byte (a newline run is its own
// piece; only after punctuation can a newline join the previous piece, as in ".\n").
func safeCut(s string, i int) bool {
	if i == 0 || i+1 >= len(s) || isSpace(s[i-1]) || isSpace(s[i+1]) {
		return false
	}
	switch s[i] {
	case ' ':
		return true
	case '\n':
		c := s[i-1]
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	return false
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\n' || b == '\t' || b == '\r' || b == '\v' || b == '\f'
}
