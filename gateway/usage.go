package gateway

import (
	"bytes"
	"errors"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/messages"
)

// Usage sources of a record.
const (
	sourceProvider  = "provider"  // the upstream reported usage
	sourceEstimated = "estimated" // the answer arrived whole without usage: counted with the tokenizer
	sourcePartial   = "partial"   // the answer was cut short: prompt + the tokens delivered
)

// delivered collects the text of an answer as it reaches the client (content, tool-call
// arguments, completion text), so an answer without provider usage can be counted. It never
// holds error text: error events are not answer content.
type delivered struct {
	buf bytes.Buffer
}

// addChunk appends the answer text of one stream chunk: the first choice's content, reasoning,
// completion text and first tool call's arguments. This runs for every event of every stream, so
// chunkText reads the usual chunk; gjsonChunk reads the others.
func (d *delivered) addChunk(payload []byte) {
	if f, ok := chunkText(payload); ok {
		for i := range f {
			f[i].appendTo(&d.buf)
		}
		return
	}
	d.gjsonChunk(payload)
}

// gjsonChunk is addChunk with gjson. It scans the chunk once for its first choice and looks
// inside that alone. It reads the chunk through a string view of payload rather than
// gjson.GetBytes, which copies the choice it finds: the view is dropped before payload is reused,
// and only copies of its text are kept.
func (d *delivered) gjsonChunk(payload []byte) {
	c := gjson.Get(unsafe.String(unsafe.SliceData(payload), len(payload)), "choices.0")
	if !c.IsObject() {
		return
	}
	// One pass over the choice and one over its delta, rather than a lookup per field (each of
	// which walks the choice again); the first occurrence of a key counts, as a lookup's does.
	var f [5]gjson.Result // content, reasoning_content, reasoning, text, tool-call arguments
	c.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "text":
			if !f[3].Exists() {
				f[3] = v
			}
		case "delta":
			v.ForEach(func(k, v gjson.Result) bool {
				switch i := deltaField(k.Str); {
				case i == 4 && !f[4].Exists():
					f[4] = v.Get("0.function.arguments")
				case i >= 0 && i < 4 && !f[i].Exists():
					f[i] = v
				}
				return true
			})
		}
		return true
	})
	for _, v := range f {
		if v.Type == gjson.String && v.Str != "" {
			d.buf.WriteString(v.Str)
		}
	}
}

// deltaField is the index in addChunk's fields of a chunk delta's key, or -1.
func deltaField(k string) int {
	switch k {
	case "content":
		return 0
	case "reasoning_content":
		return 1
	case "reasoning":
		return 2
	case "tool_calls":
		return 4
	}
	return -1
}

// addBody appends the answer text of a whole (non-stream) answer.
func (d *delivered) addBody(body []byte) {
	gjson.GetBytes(body, "choices").ForEach(func(_, c gjson.Result) bool {
		for _, path := range [...]string{"message.content", "message.reasoning_content", "message.reasoning", "text"} {
			if v := c.Get(path); v.Type == gjson.String {
				d.buf.WriteString(v.Str)
			}
		}
		c.Get("message.tool_calls").ForEach(func(_, tc gjson.Result) bool {
			d.buf.WriteString(tc.Get("function.arguments").Str)
			return true
		})
		return true
	})
}

// finishUsage decides the record's tokens, usage source, cost and charge from the request's
// outcome. The policy (docs/metering.md, "What is billed"): provider usage when the upstream gave it; the
// tokenizer's count of prompt and delivered answer when it did not; prompt plus what was
// delivered ("partial") when the answer was cut short; nothing when no answer byte reached the
// client. Error text is never counted.
func (x *exchange) finishUsage(out *outcome) {
	r := &x.rec
	if x.lookup || out.degraded { // an operation on a stored response, or a degrade reply: no tokens
		return
	}
	if x.replaying() {
		x.finishReplayUsage()
		return
	}
	cut := out.status == StatusClientClosed || out.status >= 500
	var u usage
	switch {
	case out.usage.found:
		u = out.usage
		r.UsageSource = sourceProvider
		if u.estimateOutput {
			u.completion = max(u.completion, x.g.tokens.Text(r.UpstreamModel, out.answer.buf.String()))
		}
	case out.d == nil || out.firstByte.IsZero():
		r.UsageSource = ""
	case out.unitsReported: // a transcription's duration: the provider's measure
		r.UsageSource = sourceProvider
	case isAudio(x.ep):
		// No tokenizer counts audio: the gateway's own count of seconds or characters, when it
		// has one (meterAudio), is the estimate.
		r.UsageSource = sourceEstimated
	default:
		model := r.UpstreamModel
		u = usage{found: true,
			prompt:     x.promptTokens(model),
			completion: x.g.tokens.Text(model, out.answer.buf.String())}
		r.UsageSource = sourceEstimated
	}
	if cut && r.UsageSource != "" {
		r.UsageSource = sourcePartial
	}
	r.PromptTokens, r.CompletionTokens = u.prompt, u.completion
	r.CachedTokens, r.ReasoningTokens, r.CacheWriteTokens = u.cached, u.reasoning, u.cacheWrite
	if r.UsageSource == "" {
		return
	}
	if isAudio(x.ep) {
		x.meterAudio(out)
	}
	x.g.metrics.metered(x.label, r.TenantID, r.PromptTokens, r.CompletionTokens)
	r.Units, r.Unit = unitsOf(out.units)
	price, ok := x.g.prices.Lookup(r.UpstreamModel)
	if !ok {
		price, ok = x.g.prices.Lookup(r.ServedModel) // the public model that served: a fallback, or an experiment's variant
	}
	if !ok && r.ServedModel != r.Model {
		price, ok = x.g.prices.Lookup(r.Model)
	}
	if !ok && x.ep == providers.Moderations {
		// Moderations are free unless priced (OpenAI bills none): a zero cost, no price version.
		free := int64(0)
		r.CostPicoUSD = &free
		return
	}
	if !ok {
		x.g.metrics.unpriced.WithLabelValues(x.label).Inc()
		x.g.warnUnpriced(r.Model, r.UpstreamModel)
		return
	}
	var cost int64
	var err error
	if isMedia(x.ep) {
		cost, err = x.mediaCost(price, out)
	} else {
		cost, err = billing.Cost(price, billing.Usage{Prompt: r.PromptTokens, Completion: r.CompletionTokens,
			Cached: r.CachedTokens, Reasoning: r.ReasoningTokens, CacheWrite: r.CacheWriteTokens})
	}
	if errors.Is(err, billing.ErrNoUnitPrice) { // priced, but not for what the answer holds
		x.g.metrics.unpriced.WithLabelValues(x.label).Inc()
		x.g.warnUnpriced(r.Model, r.UpstreamModel)
		return
	}
	if err != nil {
		x.g.log.Error("cost not computable; record left uncosted", "request_id", r.RequestID, "err", err)
		return
	}
	r.CostPicoUSD, r.PriceVersion = &cost, price.Version
	// Client disconnects are charged (the upstream produced and billed the tokens); answers cut by
	// an upstream fault only when configured.
	r.Charge = out.status < 400 || out.status == StatusClientClosed || (out.status >= 500 && x.g.opts.ChargeUpstreamFaults)
	x.payer.Mark(r) // whose account, or none
	x.g.metrics.cost(x.label, r.UserID, r.TenantID, r.PromptTokens, r.CompletionTokens, cost)
}

// promptTokens estimates the prompt of the request as the answering deployment got it: for a
// translated Responses request the chat body, which carries the kept conversation too; for a
// Messages request its chat translation.
func (x *exchange) promptTokens(model string) int64 {
	if t := x.translating; t != nil {
		return x.g.tokens.Prompt(string(providers.ChatCompletions), model, t.chat)
	}
	if t := x.msgsTranslating; t != nil {
		return x.g.tokens.Prompt(string(providers.ChatCompletions), model, t.chat)
	}
	if x.ep == providers.Messages {
		// A Messages body is counted as its chat translation, which carries the system prompt
		// and the tools in the form the tokenizer counts; one it refuses, as it is.
		if chat, _, err := messages.ToChat(x.body, messages.Options{}); err == nil {
			return x.g.tokens.Prompt(string(providers.ChatCompletions), model, chat)
		}
	}
	return x.g.tokens.Prompt(string(x.ep), model, x.body)
}

// warnUnpriced logs a model without a price once per process: the metric counts every request.
func (g *Gateway) warnUnpriced(model, upstream string) {
	// Looked up before it is stored: every request of an unpriced model comes here, and a lookup
	// by a struct key allocates nothing, where LoadOrStore boxes its value each time.
	k := unpricedModel{model, upstream}
	if _, seen := g.unpricedSeen.Load(k); seen {
		return
	}
	if _, seen := g.unpricedSeen.LoadOrStore(k, true); !seen {
		g.log.Warn("no price for model: usage recorded without cost", "model", model, "upstream_model", upstream)
	}
}

// unpricedModel is a key of the models warned about as unpriced.
type unpricedModel struct{ model, upstream string }

// costMetrics are the gov_cost_* series, named as the governance dashboards expect them. The userId label is bounded to the top users by
// cost (see topUsers); the rest share "other", and users without an id "none".
type costMetrics struct {
	input  *prometheus.CounterVec
	output *prometheus.CounterVec
	usd    *prometheus.CounterVec

	mu  sync.Mutex
	top *topUsers
	// own holds what each labelled user's series carry, so that a user who loses its label
	// hands its totals to "other": every series stays monotonic and the sum over userId stays
	// the total.
	own map[string]map[string]*costTotals // user → model → totals
}

type costTotals struct{ input, output, usd float64 }

func newCostMetrics(reg prometheus.Registerer, userLimit int) *costMetrics {
	m := &costMetrics{
		top: newTopUsers(userLimit),
		own: map[string]map[string]*costTotals{},
		input: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gov_cost_tokens_input_total",
			Help: "Prompt tokens of costed requests, by public model and user (the top users by cost; the rest 'other')."}, []string{"model", "userId"}),
		output: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gov_cost_tokens_output_total",
			Help: "Completion tokens of costed requests, by public model and user (the top users by cost; the rest 'other')."}, []string{"model", "userId"}),
		usd: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gov_cost_usd_total",
			Help: "Cost in USD of costed requests, by public model and user (exact in the ledger; a float here)."}, []string{"model", "userId"}),
	}
	reg.MustRegister(m.input, m.output, m.usd)
	return m
}

func (m *costMetrics) add(model, user string, prompt, completion, picoUSD int64) {
	usd := float64(picoUSD) / 1e12
	m.mu.Lock()
	defer m.mu.Unlock()
	label := "none"
	if user != "" {
		labelled, demoted := m.top.add(user, picoUSD)
		label = "other"
		if labelled {
			label = user
		}
		if demoted != "" {
			m.demote(demoted)
		}
	}
	if label != "other" && label != "none" {
		byModel := m.own[label]
		if byModel == nil {
			byModel = map[string]*costTotals{}
			m.own[label] = byModel
		}
		t := byModel[model]
		if t == nil {
			t = &costTotals{}
			byModel[model] = t
		}
		t.input += float64(prompt)
		t.output += float64(completion)
		t.usd += usd
	}
	m.input.WithLabelValues(model, label).Add(float64(prompt))
	m.output.WithLabelValues(model, label).Add(float64(completion))
	m.usd.WithLabelValues(model, label).Add(usd)
}

// demote moves a user's series into "other" and deletes them.
func (m *costMetrics) demote(user string) {
	for model, t := range m.own[user] {
		m.input.WithLabelValues(model, "other").Add(t.input)
		m.output.WithLabelValues(model, "other").Add(t.output)
		m.usd.WithLabelValues(model, "other").Add(t.usd)
	}
	delete(m.own, user)
	for _, v := range []*prometheus.CounterVec{m.input, m.output, m.usd} {
		v.DeletePartialMatch(prometheus.Labels{"userId": user})
	}
}

// topUsers picks the users whose cost gets a label of its own: at most limit of them, the
// heaviest by cost. Costs are counted with the Space-Saving algorithm (Metwally, Agrawal and El
// Abbadi, 2005) over 4 × limit counters, so memory is bounded whatever the number of users and
// any user with more than a 1/(4 × limit) share of the cost is found; the counts halve every
// topHalfLife, so the labels follow who spends now. A user takes the label of the lightest
// labelled user once it counts more than that one.
type topUsers struct {
	limit    int
	counts   map[string]*spaceCount // candidate → cost counted (pUSD, decayed)
	labelled map[string]bool
	halved   time.Time
	now      func() time.Time
}

// spaceCount is a Space-Saving counter: count over-estimates the user's cost by at most err (the
// count it inherited on taking a slot), so count - err is what it surely spent.
type spaceCount struct{ count, err float64 }

const topHalfLife = time.Hour

func newTopUsers(limit int) *topUsers {
	return &topUsers{limit: limit, counts: map[string]*spaceCount{}, labelled: map[string]bool{}, now: time.Now}
}

// add counts cost for user and says whether it is labelled; demoted names a user that lost its
// label to it ("" when none did). A user takes a label when what it surely spent is more than the
// count of the lightest labelled user, so the over-estimate of a newcomer never churns labels.
func (t *topUsers) add(user string, cost int64) (labelled bool, demoted string) {
	if now := t.now(); now.Sub(t.halved) >= topHalfLife {
		for _, c := range t.counts {
			c.count, c.err = c.count/2, c.err/2
		}
		t.halved = now
	}
	c := t.counts[user]
	if c == nil {
		c = &spaceCount{}
		if len(t.counts) >= 4*t.limit {
			// Space-Saving: the newcomer replaces the smallest candidate and inherits its count,
			// an upper bound of what the newcomer may have spent unseen. A labelled user is never
			// evicted here: it keeps its label until outweighed.
			victim := ""
			for u, v := range t.counts {
				if !t.labelled[u] && (victim == "" || v.count < t.counts[victim].count) {
					victim = u
				}
			}
			if victim != "" {
				c.count, c.err = t.counts[victim].count, t.counts[victim].count
				delete(t.counts, victim)
			}
		}
		t.counts[user] = c
	}
	c.count += float64(max(cost, 0))
	if t.labelled[user] {
		return true, ""
	}
	if len(t.labelled) < t.limit {
		t.labelled[user] = true
		return true, ""
	}
	lightest := ""
	for u := range t.labelled {
		if lightest == "" || t.counts[u].count < t.counts[lightest].count {
			lightest = u
		}
	}
	if c.count-c.err <= t.counts[lightest].count {
		return false, ""
	}
	delete(t.labelled, lightest)
	t.labelled[user] = true
	return true, lightest
}
