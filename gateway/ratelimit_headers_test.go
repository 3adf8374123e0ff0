package gateway

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/llmgate/llmgate/quota"
)

// TestRateLimitHeaders: the OpenAI-style headers of each limited window, with its limit,
// what remains (never below 0) and the time to a full window in Go's duration form, as
// net/http's Header.Set would set them; a window without a limit sets none. Setting them costs a
// handful of allocations, not two per header.
func TestRateLimitHeaders(t *testing.T) {
	win := func(limit, remaining int64, reset time.Duration) quota.Window {
		return quota.Window{Limit: limit, Remaining: remaining, Reset: reset}
	}
	for name, res := range map[string]quota.Result{
		"both":          {Requests: win(600, 599, 100*time.Millisecond+400*time.Microsecond), Tokens: win(90000, -5, 61*time.Second)},
		"requests only": {Requests: win(3, 0, 20*time.Second)},
		"tokens only":   {Tokens: win(1<<40, 1<<39, 1500*time.Millisecond)},
		"neither":       {},
	} {
		t.Run(name, func(t *testing.T) {
			want := http.Header{}
			for i, w := range []quota.Window{res.Requests, res.Tokens} {
				if w.Limit > 0 {
					want.Set(rateLimitHeaders[3*i], strconv.FormatInt(w.Limit, 10))
					want.Set(rateLimitHeaders[3*i+1], strconv.FormatInt(max(w.Remaining, 0), 10))
					want.Set(rateLimitHeaders[3*i+2], w.Reset.Round(time.Millisecond).String())
				}
			}
			got := http.Header{}
			setRateLimitHeaders(got, res)
			if len(got) != len(want) {
				t.Errorf("headers %v, want %v", got, want)
			}
			for k, v := range want {
				if len(got[k]) != 1 || got[k][0] != v[0] {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
			// A later Add to one header must not touch the next one's value.
			for k := range got {
				got.Add(k, "x")
			}
			for k, v := range want {
				if got[k][0] != v[0] {
					t.Errorf("%s after an Add to every header: %q, want %q first", k, got[k], v[0])
				}
			}
		})
	}
	res := quota.Result{Requests: win(600, 599, time.Second), Tokens: win(90000, 1000, time.Minute)}
	h := http.Header{}
	allocs := testing.AllocsPerRun(100, func() { setRateLimitHeaders(h, res) })
	if allocs > 4 {
		t.Errorf("%.0f allocations to set six headers, want at most 4", allocs)
	}
}
