package mock

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/tidwall/gjson"
)

const (
	// defaultDimensions keeps vectors small: tests compare them, nobody searches with them.
	defaultDimensions = 8
	// maxDimensions is the largest OpenAI embedding size (text-embedding-3-large).
	maxDimensions = 3072
)

// appendEmbeddings renders the embeddings list for c.input. A string or a token array is one
// input; any other array holds one input per element, as in OpenAI's API.
func appendEmbeddings(dst []byte, c *call) []byte {
	dims := cmp.Or(c.dimensions, defaultDimensions)
	dst = append(dst, `{"object":"list","data":[`...)
	tokens, index := 0, 0
	embed := func(item gjson.Result) {
		if index > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"object":"embedding","index":`...)
		dst = strconv.AppendInt(dst, int64(index), 10)
		dst = append(dst, `,"embedding":`...)
		dst = appendVector(dst, item.Raw, dims, c.base64)
		dst = append(dst, '}')
		tokens += inputTokens(item)
		index++
	}
	if in := c.input; in.IsArray() && in.Get("0").Type != gjson.Number {
		in.ForEach(func(_, item gjson.Result) bool {
			embed(item)
			return true
		})
	} else {
		embed(in)
	}
	dst = append(dst, `],"model":`...)
	dst = append(dst, c.model...)
	dst = append(dst, `,"usage":{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(tokens), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(tokens), 10)
	return append(dst, "}}"...)
}

// appendVector renders a unit vector derived from the input's raw JSON: equal inputs get equal
// vectors, different inputs almost surely different ones. As OpenAI does, base64 carries the
// little-endian float32 bytes.
func appendVector(dst []byte, raw string, dims int, b64 bool) []byte {
	seed := fnv1a(raw)
	// The components are recomputed in a second pass rather than stored, to avoid a slice.
	var norm float64
	for j := range dims {
		x := component(seed, j)
		norm += x * x
	}
	norm = math.Sqrt(norm)
	if b64 {
		var raw [4 * maxDimensions]byte
		for j := range dims {
			binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(float32(component(seed, j)/norm)))
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, raw[:4*dims])
		return append(dst, '"')
	}
	dst = append(dst, '[')
	for j := range dims {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendFloat(dst, float64(float32(component(seed, j)/norm)), 'g', -1, 32)
	}
	return append(dst, ']')
}

// fnv1a is the 64-bit FNV-1a hash (http://www.isthe.com/chongo/tech/comp/fnv/), inlined because
// hash/fnv would allocate per input.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// component is coordinate j of the vector for seed, uniform in [-1, 1).
func component(seed uint64, j int) float64 {
	return float64(splitmix64(seed+uint64(j+1)*0x9e3779b97f4a7c15)>>11)/(1<<52) - 1
}

// renderModels renders the GET /v1/models body. The mock serves any model name; the list only
// gives clients something well-formed to read.
func renderModels(created int64) []byte {
	dst := []byte(`{"object":"list","data":[`)
	for i, id := range []string{"mock-gpt", "mock-instruct", "mock-embedding"} {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":"`...)
		dst = append(dst, id...)
		dst = append(dst, `","object":"model","created":`...)
		dst = strconv.AppendInt(dst, created, 10)
		dst = append(dst, `,"owned_by":"llmgate-mock"}`...)
	}
	return append(dst, "]}"...)
}
