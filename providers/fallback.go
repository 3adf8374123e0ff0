package providers

import (
	"fmt"
	"slices"
)

// policy gathers the model's fallback lists and degrade reply; nil when it sets none, so a
// model without them costs nothing at request time.
func (m ModelConfig) policy() *modelPolicy {
	lists := map[Cause][]string{}
	for c, l := range map[Cause][]string{CauseUnavailable: m.Fallbacks, CauseRateLimited: m.RateLimitFallbacks,
		CauseContextWindow: m.ContextWindowFallbacks, CauseContentFiltered: m.ContentFilterFallbacks} {
		if len(l) > 0 {
			lists[c] = l
		}
	}
	// A rate limit falls back on the general list unless it has its own.
	if _, ok := lists[CauseRateLimited]; !ok && len(m.Fallbacks) > 0 {
		lists[CauseRateLimited] = m.Fallbacks
	}
	if len(lists) == 0 && m.Degrade == nil {
		return nil
	}
	return &modelPolicy{fallbacks: lists, degrade: m.Degrade}
}

// checkFallbacks checks that every fallback names another configured model, once per list.
func (r *Router) checkFallbacks(models []ModelConfig) error {
	for i, m := range models {
		for field, l := range map[string][]string{"fallbacks": m.Fallbacks, "context_window_fallbacks": m.ContextWindowFallbacks,
			"content_filter_fallbacks": m.ContentFilterFallbacks, "rate_limit_fallbacks": m.RateLimitFallbacks} {
			for j, f := range l {
				switch {
				case f == m.Name:
					return fmt.Errorf("models[%d] (%s).%s[%d]: a model cannot fall back on itself", i, m.Name, field, j)
				case !r.Has(f):
					return fmt.Errorf("models[%d] (%s).%s[%d]: no model named %q", i, m.Name, field, j, f)
				case slices.Index(l, f) != j:
					return fmt.Errorf("models[%d] (%s).%s[%d]: %q is listed twice", i, m.Name, field, j, f)
				}
			}
		}
		if d := m.Degrade; d != nil && (d.Text == "") == (d.Response == nil) {
			return fmt.Errorf("models[%d] (%s).degrade: set exactly one of text and response", i, m.Name)
		}
	}
	return nil
}

// Fallbacks returns the public models to try, in order, after every deployment of model failed
// with cause; nil when there are none.
func (r *Router) Fallbacks(model string, c Cause) []string {
	if p := r.policies[model]; p != nil {
		return p.fallbacks[c]
	}
	return nil
}

// Degrade returns the model's degrade reply, nil when it has none.
func (r *Router) Degrade(model string) *DegradeReply {
	if p := r.policies[model]; p != nil {
		return p.degrade
	}
	return nil
}

// KeepFallbacks returns m with only the fallbacks keep accepts: a model checked on its own, or
// one made over the admin API that names a model gone since, keeps what still resolves.
func (m ModelConfig) KeepFallbacks(keep func(string) bool) ModelConfig {
	filter := func(l []string) []string {
		if l == nil {
			return nil
		}
		out := make([]string, 0, len(l))
		for _, f := range l {
			if keep(f) {
				out = append(out, f)
			}
		}
		return out
	}
	m.Fallbacks, m.ContextWindowFallbacks = filter(m.Fallbacks), filter(m.ContextWindowFallbacks)
	m.ContentFilterFallbacks, m.RateLimitFallbacks = filter(m.ContentFilterFallbacks), filter(m.RateLimitFallbacks)
	return m
}

// FallbackNames returns every model m's fallback lists name.
func (m ModelConfig) FallbackNames() []string {
	var out []string
	for _, l := range [][]string{m.Fallbacks, m.ContextWindowFallbacks, m.ContentFilterFallbacks, m.RateLimitFallbacks} {
		out = append(out, l...)
	}
	return out
}
