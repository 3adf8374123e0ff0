package providers

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRetryWait: a deployment is retried on itself only for transient outcomes, within its
// retry count; the waits double from the backoff within ±20%; an upstream Retry-After within
// the cap replaces the wait and one beyond it refuses the retry.
func TestRetryWait(t *testing.T) {
	three := 3
	d := &Deployment{Retry: RetryPolicy{Retries: &three}.withDefaults(RetryPolicy{})}
	for _, tc := range []struct {
		name string
		o    Outcome
		n    int
		ok   bool
		min  time.Duration
		max  time.Duration
	}{
		{"503, first retry: about 1 s", Outcome{Kind: Answered, Status: 503}, 1, true, 800 * time.Millisecond, 1200 * time.Millisecond},
		{"429, second retry: about 2 s", Outcome{Kind: Answered, Status: 429}, 2, true, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{"connection refused, third retry: about 4 s", Outcome{Kind: Unsent}, 3, true, 3200 * time.Millisecond, 4800 * time.Millisecond},
		{"a fourth retry is one too many", Outcome{Kind: Answered, Status: 503}, 4, false, 0, 0},
		{"Retry-After within the cap", Outcome{Kind: Answered, Status: 429, RetryAfter: 3 * time.Second}, 1, true, 3 * time.Second, 3 * time.Second},
		{"Retry-After beyond the cap", Outcome{Kind: Answered, Status: 429, RetryAfter: 11 * time.Second}, 1, false, 0, 0},
		{"400: the request's fault", Outcome{Kind: Answered, Status: 400}, 1, false, 0, 0},
		{"401: will not mend itself", Outcome{Kind: Answered, Status: 401}, 1, false, 0, 0},
		{"501", Outcome{Kind: Answered, Status: 501}, 1, false, 0, 0},
		{"a timeout after sending, no retry_on_timeout", Outcome{Kind: TimedOut}, 1, false, 0, 0},
		{"the answer has begun", Outcome{Kind: Begun}, 1, false, 0, 0},
		{"the outbound policy refused the address: it will refuse it again", Outcome{Kind: Unsent, Permanent: true}, 1, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ok := RetryWait(d, tc.o, tc.n)
			if ok != tc.ok || (ok && (w < tc.min || w > tc.max)) {
				t.Errorf("RetryWait = %v, %v; want %v within [%v, %v]", w, ok, tc.ok, tc.min, tc.max)
			}
		})
	}
	if _, ok := RetryWait(&Deployment{}, Outcome{Kind: Answered, Status: 503}, 1); ok {
		t.Errorf("a deployment without a retry policy was retried")
	}
}

// TestRetryAfter: retry-after-ms first, then Retry-After in seconds or as an HTTP date; nonsense
// is no wish at all.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"2"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(5 * time.Second).Format(http.TimeFormat)}}, 5 * time.Second},
		{http.Header{"Retry-After": {"-1"}}, 0},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{}, 0},
	} {
		if got := RetryAfter(tc.h, now); got != tc.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// TestCauseOf: the causes the fallback lists name, as the providers word them.
func TestCauseOf(t *testing.T) {
	for _, tc := range []struct {
		status        int
		code, message string
		want          Cause
	}{
		{429, "", "Rate limit reached", CauseRateLimited},
		{503, "", "", CauseUnavailable},
		{401, "", "", CauseUnavailable},
		{400, "context_length_exceeded", "", CauseContextWindow},
		{400, "", "prompt is too long: 210000 tokens > 200000 maximum", CauseContextWindow},
		{400, "", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", CauseContextWindow},
		{400, "content_filter", "", CauseContentFiltered},
		{400, "", "Your request was rejected as a result of our safety system.", CauseContentFiltered},
		{400, "invalid_value", "temperature must be at most 2", CauseNone},
		{404, "", "", CauseNone},
	} {
		if got := CauseOf(tc.status, tc.code, tc.message); got != tc.want {
			t.Errorf("CauseOf(%d, %q, %q) = %v, want %v", tc.status, tc.code, tc.message, got, tc.want)
		}
	}
}

// TestFallbackConfig: fallbacks must name other configured models, once; a degrade reply sets
// text or response; retries stay within bounds.
func TestFallbackConfig(t *testing.T) {
	provs := map[string]Provider{"p": nil}
	dep := []DeploymentConfig{{Provider: "p"}}
	eleven := 11
	for _, tc := range []struct {
		name string
		m    ModelConfig
		want string
	}{
		{"unknown fallback", ModelConfig{Fallbacks: []string{"nope"}}, `no model named "nope"`},
		{"itself", ModelConfig{ContextWindowFallbacks: []string{"a"}}, "cannot fall back on itself"},
		{"twice", ModelConfig{Fallbacks: []string{"b", "b"}}, "listed twice"},
		{"degrade with neither", ModelConfig{Degrade: &DegradeReply{}}, "exactly one of text and response"},
		{"too many retries", ModelConfig{Retry: RetryPolicy{Retries: &eleven}}, "retry.retries"},
		{"fine", ModelConfig{Fallbacks: []string{"b"}, RateLimitFallbacks: []string{"b"}, Degrade: &DegradeReply{Text: "x"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Name, tc.m.Deployments = "a", dep
			r, err := NewRouter([]ModelConfig{tc.m, {Name: "b", Deployments: dep}}, RoutingConfig{}, provs, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := r.Fallbacks("a", CauseUnavailable); len(got) != 1 || got[0] != "b" || r.Degrade("a") == nil || r.Fallbacks("b", CauseUnavailable) != nil {
					t.Errorf("fallbacks %v, degrade %v", got, r.Degrade("a"))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestRetryDefault: with no retry policy anywhere, a deployment is retried three times on
// itself, about 1 s, 2 s and 4 s apart; a model or deployment may still turn it off.
func TestRetryDefault(t *testing.T) {
	provs := map[string]Provider{"p": nil}
	zero := 0
	r, err := NewRouter([]ModelConfig{
		{Name: "plain", Deployments: []DeploymentConfig{{Provider: "p"}}},
		{Name: "off", Deployments: []DeploymentConfig{{Provider: "p"}}, Retry: RetryPolicy{Retries: &zero}},
	}, RoutingConfig{}, provs, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Candidates("plain")[0]
	if d.Retry.Count() != 3 {
		t.Fatalf("default retries: %d, want 3", d.Retry.Count())
	}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second} {
		w, ok := RetryWait(d, Outcome{Kind: Answered, Status: http.StatusServiceUnavailable}, n)
		if !ok || w < want*8/10 || w > want*12/10 {
			t.Errorf("retry %d: wait %v (%v), want %v ±20%%", n, w, ok, want)
		}
	}
	if _, ok := RetryWait(d, Outcome{Kind: Answered, Status: http.StatusServiceUnavailable}, 4); ok {
		t.Error("a fourth retry by default")
	}
	if c := r.Candidates("off")[0].Retry.Count(); c != 0 {
		t.Errorf("retries: 0 on the model left %d", c)
	}
}
