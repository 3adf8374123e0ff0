package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/llmgate/llmgate/internal/redact"
)

// A probe is one minimal request to a deployment through its provider adapter (the real path to
// the upstream: its URL, credential, translation), outside any client request: the admin API's
// test call and the active health check both send one. The test call does not go through the
// breaker at all: an admin tests a deployment most often when its breaker is open, and a test
// must neither wait for the breaker nor trip or close it. The health check does (HealthChecker).

// HealthCheck configures the active health check of deployments: a probe every Interval, whose
// outcome the deployment's breaker counts as it counts a request's, so a dead deployment of an
// idle model is known (its breaker open) before a user's request finds it. Off by default.
type HealthCheck struct {
	// Interval between two probes of a deployment; 0 turns the check off [0].
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one probe [5s].
	Timeout time.Duration `yaml:"timeout"`
	// Endpoint is the probe's request: chat/completions (one user message "ping", max_tokens 1)
	// or embeddings (input "ping") [chat/completions].
	Endpoint Endpoint `yaml:"endpoint"`
}

// withDefaults fills h's zero fields from d, then from the built-in defaults.
func (h HealthCheck) withDefaults(d HealthCheck) HealthCheck {
	out := HealthCheck{Interval: firstSet(h.Interval, d.Interval, 0), Timeout: firstSet(h.Timeout, d.Timeout, 5*time.Second),
		Endpoint: h.Endpoint}
	if out.Endpoint == "" {
		out.Endpoint = d.Endpoint
	}
	if out.Endpoint == "" {
		out.Endpoint = ChatCompletions
	}
	return out
}

func validHealthCheck(field string, h HealthCheck) error {
	switch h.Endpoint {
	case "", ChatCompletions, Embeddings:
	default:
		return fmt.Errorf("%s.endpoint: %q is not chat/completions or embeddings", field, h.Endpoint)
	}
	if h.Interval < 0 || h.Timeout < 0 {
		return fmt.Errorf("%s: interval and timeout must not be negative", field)
	}
	return nil
}

// ProbeResult is what one probe found.
type ProbeResult struct {
	// Status is the upstream's HTTP status; 0 when no answer came (connection refused, timeout).
	Status  int
	Latency time.Duration
	// Answer is the upstream's reply: the chat message's text, or a description of the
	// embedding, when the probe succeeded.
	Answer string
	// Err says why the probe failed (the upstream's error message, or the transport's), with
	// credentials removed; nil when it succeeded.
	Err error
}

// OK reports whether the probe succeeded.
func (r ProbeResult) OK() bool { return r.Err == nil }

// probeBodyLimit bounds how much of a probe's answer is read.
const probeBodyLimit = 64 << 10

// Probe sends one minimal request of endpoint ep (chat/completions when empty) to d, bounded by
// timeout, and reads the answer. It does not use d's breaker.
func Probe(ctx context.Context, d *Deployment, ep Endpoint, timeout time.Duration) ProbeResult {
	if ep == "" {
		ep = ChatCompletions
	}
	var body []byte
	switch ep {
	case Embeddings:
		body, _ = json.Marshal(map[string]any{"model": d.Model, "input": "ping"})
	default:
		body, _ = json.Marshal(map[string]any{"model": d.Model, "max_tokens": 1,
			"messages": []map[string]string{{"role": "user", "content": "ping"}}})
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var creds []string
	if ch, ok := d.Provider.(CredentialHolder); ok {
		creds = ch.Credentials()
	}
	clean := func(s string) error { return errors.New(redact.Credentials(s, creds...)) }
	start := time.Now()
	resp, err := d.Provider.Do(ctx, &Request{Endpoint: ep, Body: body, Model: d.Model, Header: http.Header{}})
	if err != nil {
		return ProbeResult{Latency: time.Since(start), Err: clean(err.Error())}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, probeBodyLimit))
	r := ProbeResult{Status: resp.StatusCode, Latency: time.Since(start)}
	if err != nil {
		r.Err = clean("reading the answer: " + err.Error())
		return r
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		msg := "upstream answered " + strconv.Itoa(resp.StatusCode)
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			msg += ": " + e.Error.Message
		}
		r.Err = clean(msg)
		return r
	}
	var ok struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Data []struct {
			Embedding []json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &ok); err != nil {
		r.Err = errors.New("the answer is not OpenAI-format JSON")
		return r
	}
	switch {
	case len(ok.Choices) > 0:
		r.Answer = redact.Credentials(ok.Choices[0].Message.Content, creds...)
	case len(ok.Data) > 0:
		r.Answer = "an embedding of " + strconv.Itoa(len(ok.Data[0].Embedding)) + " dimensions"
	default:
		r.Err = errors.New("the answer has no choices and no data")
	}
	return r
}

// HealthChecker probes every deployment whose health check is on, on each replica (breakers are
// per replica: each learns of a dead deployment itself). A probe goes through the deployment's
// breaker like a request: an open breaker is not probed until it lets a probe through
// (half-open), a failed probe counts as a failure, a good one as a success, and a 4xx that is the
// probe's own fault counts neither way. At most one probe per deployment is in flight.
type HealthChecker struct {
	router   func() *Router
	balancer *Balancer
	log      *slog.Logger

	mu       sync.Mutex
	last     map[string]time.Time
	inFlight map[string]bool
}

// NewHealthChecker checks the deployments of the table router returns, each time it is asked.
func NewHealthChecker(router func() *Router, b *Balancer, log *slog.Logger) *HealthChecker {
	if log == nil {
		log = slog.Default()
	}
	return &HealthChecker{router: router, balancer: b, log: log, last: map[string]time.Time{}, inFlight: map[string]bool{}}
}

// healthTick is how often the checker looks for deployments due a probe.
const healthTick = 100 * time.Millisecond

// Run probes until ctx ends, and waits for the probes in flight.
func (h *HealthChecker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(healthTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, d := range h.due(now) {
				wg.Go(func() { h.probe(ctx, d) })
			}
		}
	}
}

// due returns the deployments whose next probe is due, marking them in flight.
func (h *HealthChecker) due(now time.Time) []*Deployment {
	r := h.router()
	if r == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Deployment
	seen := map[string]bool{}
	for _, m := range r.Models() {
		for _, d := range r.Deployments(m) {
			hc := d.HealthCheck
			if seen[d.ID] || !d.Enabled || hc.Interval <= 0 || h.inFlight[d.ID] || now.Sub(h.last[d.ID]) < hc.Interval {
				continue
			}
			seen[d.ID] = true
			h.inFlight[d.ID], h.last[d.ID] = true, now
			out = append(out, d)
		}
	}
	return out
}

func (h *HealthChecker) probe(ctx context.Context, d *Deployment) {
	defer func() {
		h.mu.Lock()
		delete(h.inFlight, d.ID)
		h.mu.Unlock()
	}()
	att, ok := h.balancer.Acquire(d)
	if !ok { // open: it lets a probe through once half-open
		return
	}
	r := Probe(ctx, d, d.HealthCheck.Endpoint, d.HealthCheck.Timeout)
	switch {
	case ctx.Err() != nil:
		att.Excused()
	case r.OK():
		att.Succeeded()
	case r.Status == 0 || UpstreamFault(r.Status):
		// The reason and the log name no host: a transport error would.
		reason := "health check: no answer (connection failed or timed out)"
		if r.Status != 0 {
			reason = "health check: upstream answered " + strconv.Itoa(r.Status)
		}
		att.Failed(reason)
		h.log.Warn("deployment health check failed", "deployment", d.ID, "reason", reason)
	default: // a 4xx the probe itself caused (the deployment does not take it)
		att.Excused()
		h.log.Warn("deployment health check refused by the upstream; not counted", "deployment", d.ID, "status", r.Status)
	}
}
