package gateway

import (
	"bytes"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
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

// addChunk appends the answer text of one stream chunk. It scans the chunk once for its first
// choice and looks inside that alone: this runs for every event of every stream.
func (d *delivered) addChunk(payload []byte) {
	c := gjson.GetBytes(payload, "choices.0")
	if !c.IsObject() {
		return
	}
	for _, path := range [...]string{"delta.content", "delta.reasoning_content", "text", "delta.tool_calls.0.function.arguments"} {
		if v := c.Get(path); v.Type == gjson.String && v.Str != "" {
			d.buf.WriteString(v.Str)
		}
	}
}

// addBody appends the answer text of a whole (non-stream) answer.
func (d *delivered) addBody(body []byte) {
	gjson.GetBytes(body, "choices").ForEach(func(_, c gjson.Result) bool {
		for _, path := range [...]string{"message.content", "message.reasoning_content", "text"} {
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

// finishUsage decides the record's tokens, usage source, cost and charge once the answer is
// over. The policy (README, "Usage records"): provider usage when the upstream gave it; the
// tokenizer's count of prompt and delivered answer when it did not; prompt plus what was
// delivered ("partial") when the answer was cut short; nothing when no answer byte reached the
// client. Error text is never counted.
func (x *exchange) finishUsage() {
	r := &x.rec
	cut := x.status == StatusClientClosed || x.status >= 500
	switch {
	case x.usage.found:
		r.UsageSource = sourceProvider
	case !x.attempted || x.firstByte.IsZero():
		r.UsageSource = ""
		x.usage = usage{}
	default:
		model := r.UpstreamModel
		x.usage = usage{found: true,
			prompt:     x.g.tokens.Prompt(string(x.ep), model, x.body),
			completion: x.g.tokens.Text(model, x.answer.buf.String())}
		r.UsageSource = sourceEstimated
	}
	if cut && r.UsageSource != "" {
		r.UsageSource = sourcePartial
	}
	r.PromptTokens, r.CompletionTokens = x.usage.prompt, x.usage.completion
	r.CachedTokens, r.ReasoningTokens = x.usage.cached, x.usage.reasoning
	if r.UsageSource == "" {
		return
	}
	price, ok := x.g.prices.Lookup(r.UpstreamModel)
	if !ok {
		price, ok = x.g.prices.Lookup(r.Model)
	}
	if !ok {
		x.g.metrics.unpriced.WithLabelValues(x.label).Inc()
		x.g.warnUnpriced(r.Model, r.UpstreamModel)
		return
	}
	cost, err := billing.Cost(price, billing.Usage{Prompt: r.PromptTokens, Completion: r.CompletionTokens,
		Cached: r.CachedTokens, Reasoning: r.ReasoningTokens})
	if err != nil {
		x.g.log.Error("cost not computable; record left uncosted", "request_id", r.RequestID, "err", err)
		return
	}
	r.CostPicoUSD, r.PriceVersion = &cost, price.Version
	// Client disconnects are charged (the upstream produced and billed the tokens); answers cut by
	// an upstream fault only when configured.
	r.Charge = x.status < 400 || x.status == StatusClientClosed || (x.status >= 500 && x.g.opts.ChargeUpstreamFaults)
	x.g.metrics.cost(x.label, r.UserID, r.PromptTokens, r.CompletionTokens, cost)
}

// warnUnpriced logs a model without a price once per process: the metric counts every request.
func (g *Gateway) warnUnpriced(model, upstream string) {
	if _, seen := g.unpricedSeen.LoadOrStore(model+"\x00"+upstream, true); !seen {
		g.log.Warn("no price for model: usage recorded without cost", "model", model, "upstream_model", upstream)
	}
}

// userLabels bounds the cardinality of the userId label of the gov_cost_* series: the first
// `limit` users seen get their own label, every later one is "other".
type userLabels struct {
	limit int
	mu    sync.Mutex
	seen  map[string]struct{}
}

func (u *userLabels) label(user string) string {
	if user == "" {
		return "none"
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.seen[user]; ok {
		return user
	}
	if len(u.seen) >= u.limit {
		return "other"
	}
	u.seen[user] = struct{}{}
	return user
}

// costMetrics are the seed's gov_cost_* series.
type costMetrics struct {
	users  *userLabels
	input  *prometheus.CounterVec
	output *prometheus.CounterVec
	usd    *prometheus.CounterVec
}

func newCostMetrics(reg prometheus.Registerer, userLimit int) costMetrics {
	m := costMetrics{
		users: &userLabels{limit: userLimit, seen: map[string]struct{}{}},
		input: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gov_cost_tokens_input_total",
			Help: "Prompt tokens of costed requests, by public model and user (top users; the rest 'other')."}, []string{"model", "userId"}),
		output: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gov_cost_tokens_output_total",
			Help: "Completion tokens of costed requests, by public model and user."}, []string{"model", "userId"}),
		usd: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gov_cost_usd_total",
			Help: "Cost in USD of costed requests, by public model and user (exact in the ledger; a float here)."}, []string{"model", "userId"}),
	}
	reg.MustRegister(m.input, m.output, m.usd)
	return m
}

func (m costMetrics) add(model, user string, prompt, completion, picoUSD int64) {
	u := m.users.label(user)
	m.input.WithLabelValues(model, u).Add(float64(prompt))
	m.output.WithLabelValues(model, u).Add(float64(completion))
	m.usd.WithLabelValues(model, u).Add(float64(picoUSD) / 1e12)
}
