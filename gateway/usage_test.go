package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The userId label goes to the heaviest users: a newcomer who outspends a labelled user takes its
// label, the demoted user's totals move to "other", and the sum over every label stays the total.
func TestCostLabelsFollowTopUsers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newCostMetrics(reg, 3)
	var total float64
	add := func(user string, pico int64) {
		m.add("gpt", user, 1, 1, pico)
		total += float64(pico) / 1e12
	}
	for i := range 50 { // 50 light users: the first three get labels
		add(fmt.Sprintf("light-%d", i), 1_000_000)
	}
	for _, u := range []string{"light-0", "light-1", "light-2"} {
		if v := testutil.ToFloat64(m.usd.WithLabelValues("gpt", u)); v != 1e-6 {
			t.Fatalf("%s: %v, want its own series", u, v)
		}
	}
	add("whale", 500_000_000) // outweighs a labelled light user at once
	add("whale", 500_000_000)
	if v := testutil.ToFloat64(m.usd.WithLabelValues("gpt", "whale")); v != 1e-3 {
		t.Errorf("whale: %v USD in its series, want 0.001", v)
	}
	if n := testutil.CollectAndCount(m.usd); n != 4 { // three users and "other"
		t.Errorf("%d gov_cost_usd_total series, want 4 (3 users + other)", n)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == "gov_cost_usd_total" {
			for _, s := range f.GetMetric() {
				sum += s.GetCounter().GetValue()
			}
		}
	}
	if d := sum - total; d > 1e-12 || d < -1e-12 {
		t.Errorf("sum over labels %v, want the total %v", sum, total)
	}
	if v := testutil.ToFloat64(m.input.WithLabelValues("gpt", "other")); v != 48 {
		t.Errorf("other: %v prompt tokens, want 48 (47 unlabelled light users + the demoted one)", v)
	}
}

// Space-Saving keeps memory bounded and still finds a heavy user among many light ones; counts
// halve with time, so yesterday's heavy user gives way.
func TestTopUsersBoundedAndDecaying(t *testing.T) {
	now := time.Unix(0, 0)
	top := newTopUsers(2)
	top.now = func() time.Time { return now }
	for i := range 10_000 {
		top.add(fmt.Sprintf("u%d", i), 1)
		if i%10 == 0 {
			top.add("heavy", 5)
		}
	}
	if len(top.counts) > 8 {
		t.Errorf("%d candidates kept, want at most 4 × limit = 8", len(top.counts))
	}
	if !top.labelled["heavy"] {
		t.Errorf("heavy user not labelled: %v", top.labelled)
	}
	for range 10 {
		now = now.Add(topHalfLife)
		top.add("newcomer", 100)
	}
	if !top.labelled["newcomer"] {
		t.Errorf("a user spending now is not labelled after the old counts decayed: %v", top.labelled)
	}
}

// A stream chunk's answer text, as kept for counting an answer that brings no usage: content,
// reasoning, completion text and the first tool call's arguments, in that order; the first of
// a repeated key; nothing from non-string values, other choices or other keys.
func TestDeliveredChunkText(t *testing.T) {
	for _, tc := range []struct{ chunk, want string }{
		{`{"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}],"usage":null}`, "word "},
		{`{"choices":[{"delta":{"reasoning_content":"R","content":"C","reasoning":"r"}}]}`, "CRr"},
		{`{"choices":[{"text":"T","delta":{"content":"C"}}]}`, "CT"},
		{`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":"}},{"function":{"arguments":"x"}}]}}]}`, `{"a":`},
		{`{"choices":[{"delta":{"content":"A","content":"B"}}]}`, "A"},
		{`{"choices":[{"delta":{"content":null,"refusal":"no"}}]}`, ""},
		{`{"choices":[{"delta":{"content":7}},{"delta":{"content":"second choice"}}]}`, ""},
		{`{"choices":[],"usage":{"prompt_tokens":1}}`, ""},
		{`{"content":"top level"}`, ""},
	} {
		var d delivered
		d.addChunk([]byte(tc.chunk))
		if got := d.buf.String(); got != tc.want {
			t.Errorf("%s: kept %q, want %q", tc.chunk, got, tc.want)
		}
	}
}

// A model without a price is warned about once per pair of public and upstream model, however
// many of its requests follow.
func TestUnpricedWarnedOnce(t *testing.T) {
	var logged strings.Builder
	g := &Gateway{log: slog.New(slog.NewTextHandler(&logged, nil))}
	for range 3 {
		g.warnUnpriced("m", "up-m")
	}
	g.warnUnpriced("m", "up-other")
	g.warnUnpriced("m", "up-m")
	if n := strings.Count(logged.String(), "no price for model"); n != 2 {
		t.Errorf("%d warnings, want 2 (one per pair):\n%s", n, logged.String())
	}
	if !strings.Contains(logged.String(), "upstream_model=up-other") {
		t.Errorf("no warning names up-other:\n%s", logged.String())
	}
}

// BenchmarkDeliveredChunk keeps the answer text of a typical stream chunk (it runs for every
// relayed event).
func BenchmarkDeliveredChunk(b *testing.B) {
	benchDelivered(b, `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up-m","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"word "},"logprobs":null,"finish_reason":null}],"usage":null}`)
}

// BenchmarkDeliveredChunkEscaped is a chunk whose text has escapes (a line break, quotes), which
// answers in Markdown or code bring often.
func BenchmarkDeliveredChunkEscaped(b *testing.B) {
	benchDelivered(b, `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up-m","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"\n\n\"word\""},"logprobs":null,"finish_reason":null}],"usage":null}`)
}

// benchDelivered keeps the answer text of chunk, once an op.
func benchDelivered(b *testing.B, chunk string) {
	p := []byte(chunk)
	var d delivered
	b.ReportAllocs()
	for b.Loop() {
		d.buf.Reset()
		d.addChunk(p)
	}
}

// indexQuoted finds what bytes.Index finds, for separators that begin with a quote.
func TestIndexQuoted(t *testing.T) {
	sep := []byte(`"usage":`)
	for _, b := range []string{``, `"usage":`, `x"usage":`, `usage":`, `"max_usage":1,"usage":null`, `{"a":"usage\":","usage":{}}`,
		`"usage"`, `{"choices":[],"usage":null}`, `""usage":`, `usage":"usage":`} {
		if got, want := indexQuoted([]byte(b), sep), bytes.Index([]byte(b), sep); got != want {
			t.Errorf("indexQuoted(%q) = %d, want %d", b, got, want)
		}
	}
}

// FuzzChunkText: the answer text addChunk keeps of a chunk is what gjson's reading keeps
// (gjsonChunk), on every valid JSON input; chunkText reads any input without panicking.
func FuzzChunkText(f *testing.F) {
	for _, seed := range []string{
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up-m","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"word "},"logprobs":null,"finish_reason":null}],"usage":null}`,
		`{"choices":[{"delta":{"reasoning_content":"R","content":"C","reasoning":"r"}}]}`,
		`{"choices":[{"text":"T","delta":{"content":"C"}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":"}},{"function":{"arguments":"x"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"ab"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[],"tool_calls":[{"function":{"arguments":"second"}}]}}]}`,
		`{"choices":[{"delta":{"content":"A","content":"B"}}]}`,
		`{"choices":[{"delta":{"content":null,"refusal":"no"}},{"delta":{"content":"x"}}]}`,
		`{"choices":[{"delta":{"content":"line\nbreak"}}]}`,
		`{"choi\u0063es":[{"delta":{"content":"escaped key"}}],"choices":[{"delta":{"content":"plain"}}]}`,
		` { "choices" : [ { "delta" : { "content" : "spaced" } } ] } `,
		`{"choices":{"0":{"delta":{"content":"object"}}}}`,
		`{"choices":[],"usage":{"prompt_tokens":1}}`,
		`{"choices":[[1,2],{"delta":{"content":"second"}}]}`,
		`{"choices":[{"delta":[{"content":"array delta"}],"text":7}]}`,
		`[{"choices":[]}]`,
		`{"content":"top level"}`,
		`{"choices":[{"delta":{"content":"\ud800\u0041 lone, \ud83d\ude00 pair, \\ \/ \b\f\r\t \"q\""}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, chunk []byte) {
		var fast delivered
		fast.addChunk(chunk)
		if !json.Valid(chunk) {
			return
		}
		var slow delivered
		slow.gjsonChunk(chunk)
		if fast.buf.String() != slow.buf.String() {
			t.Errorf("%s: kept %q, gjson keeps %q", chunk, fast.buf.String(), slow.buf.String())
		}
	})
}

// The usual chunk is read without gjson, and a chunk chunkText leaves to gjson keeps the same.
func TestChunkTextReadsUsualChunks(t *testing.T) {
	for _, tc := range []struct {
		chunk string
		read  bool
	}{
		{`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"role":"assistant","content":"word "},"logprobs":null,"finish_reason":null}],"usage":null}`, true},
		{`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}`, true},
		{`{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, true},
		{`{"choices":[{"delta":{"content":"quote \" inside, line\nbreak \u00e9 \ud83d\ude00"}}]}`, true},
		{`{"choi\u0063es":[{"delta":{"content":"x"}}]}`, false},
	} {
		if _, ok := chunkText([]byte(tc.chunk)); ok != tc.read {
			t.Errorf("%s: read without gjson %v, want %v", tc.chunk, ok, tc.read)
		}
	}
}

// FuzzResponsesFields: what responsesFields reads of a Responses stream event (sequence_number,
// delta) is what gjson reads, on every valid JSON input it reads; it reads any input without
// panicking.
func FuzzResponsesFields(f *testing.F) {
	for _, seed := range []string{
		`{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" mock","logprobs":[]}`,
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","output":[],"usage":null,"metadata":{}}}`,
		`{"type":"response.output_text.delta","delta":"a\nb","sequence_number":7}`,
		`{"sequence_number":1.5,"delta":"x"}`,
		`{"sequence_number":"3","delta":7}`,
		`{"sequence_number":-2,"sequence_number":5,"delta":"first","delta":"second"}`,
		`{"sequence_number":123456789012345678901,"delta":""}`,
		`{"sequence_\u006eumber":3,"delta":"escaped key"}`,
		` { "delta" : "spaced" , "sequence_number" : 9 } `,
		`[1,2]`,
		`{"type":"response.output_text.delta","sequence_number":1,"delta":"\ud800\u0041 lone, \ud83d\ude00 pair \\ \/ \b\f\r\t"}`,
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, event []byte, wantDelta bool) {
		fast, ok := responsesFields(event, wantDelta)
		if !ok || !json.Valid(event) {
			return
		}
		slow := gjsonResponsesFields(event)
		if fast.hasSeq != slow.hasSeq || fast.seq != slow.seq {
			t.Errorf("%s: sequence_number %d (%v), gjson reads %d (%v)", event, fast.seq, fast.hasSeq, slow.seq, slow.hasSeq)
		}
		var got, want bytes.Buffer
		fast.delta.appendTo(&got)
		slow.delta.appendTo(&want)
		if wantDelta && got.String() != want.String() {
			t.Errorf("%s: delta %q, gjson reads %q", event, got.String(), want.String())
		}
	})
}
