package alerts

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers/outbound"
)

// TestSign checks the signature against one computed independently (Python's hmac module).
func TestSign(t *testing.T) {
	got := Sign("whsec_test", time.Unix(1796553667, 0), []byte(`{"id":"alert_1"}`))
	want := "t=1796553667,v1=34d886fc435b7e22a92689164f8a44c58dc6b72ec6700f6362234b23b156a6bd"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestBackoff(t *testing.T) {
	o := Options{}.WithDefaults().Delivery
	for _, c := range []struct {
		attempt  int
		max, min time.Duration
	}{
		{1, time.Second, 800 * time.Millisecond},
		{2, 2 * time.Second, 1600 * time.Millisecond},
		{4, 8 * time.Second, 6400 * time.Millisecond},
		{9, 256 * time.Second, 204800 * time.Millisecond},
		{10, 5 * time.Minute, 4 * time.Minute},
		{60, 5 * time.Minute, 4 * time.Minute}, // no overflow however many
	} {
		for range 50 {
			if d := backoff(o, c.attempt); d > c.max || d < c.min {
				t.Errorf("backoff after attempt %d = %v, want within [%v, %v]", c.attempt, d, c.min, c.max)
				break
			}
		}
	}
}

func TestCheckPercents(t *testing.T) {
	for _, c := range []struct {
		in  []int
		bad int // -1: valid
	}{
		{[]int{80, 90, 100}, -1},
		{nil, -1},
		{[]int{}, -1},
		{[]int{0}, 0},
		{[]int{50, 101}, 1},
		{[]int{90, 80}, 1},
		{[]int{80, 80}, 1},
	} {
		i, err := CheckPercents(c.in)
		if (err == nil) != (c.bad < 0) || (err != nil && i != c.bad) {
			t.Errorf("CheckPercents(%v) = %d, %v; want bad index %d", c.in, i, err, c.bad)
		}
	}
	if err := (Options{Thresholds: []int{90, 80}}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "alerts.thresholds[1]") {
		t.Errorf("Validate: %v, want it to name alerts.thresholds[1]", err)
	}
	if err := (Options{Delivery: DeliveryOptions{Timeout: -time.Second}}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "alerts.delivery.timeout") {
		t.Errorf("Validate: %v, want it to name alerts.delivery.timeout", err)
	}
}

// TestCheckURL checks webhook URLs without connecting anywhere: literal addresses are judged by
// the policy as they are.
func TestCheckURL(t *testing.T) {
	loopback := outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, c := range []struct {
		url    string
		policy outbound.Policy
		ok     bool
	}{
		{"http://127.0.0.1:9000/hook", loopback, true},
		{"https://hooks.example.com/x?y=1", outbound.Policy{}, true}, // a name: judged when dialed
		{"http://127.0.0.1:9000/hook", outbound.Policy{}, false},     // loopback without the allow list
		{"http://localhost:9000/hook", outbound.Policy{}, false},
		{"http://[::1]:9000/hook", loopback, false},
		{"http://[::1]:9000/hook", outbound.Policy{AllowPrivate: true}, true},
		{"http://169.254.169.254/latest", outbound.Policy{AllowPrivate: true}, false},
		{"http://[fd00:ec2::254]/", outbound.Policy{AllowPrivate: true}, false},
		{"ftp://127.0.0.1/x", loopback, false},
		{"http://user:pass@127.0.0.1/x", loopback, false},
		{"http://127.0.0.1/x#frag", loopback, false},
		{"http:///x", loopback, false},
		{"http://127.0.0.1:99999/x", loopback, false},
		{"", loopback, false},
		{"http://127.0.0.1/" + strings.Repeat("a", 2000), loopback, false},
	} {
		if err := CheckURL(c.url, c.policy); (err == nil) != c.ok {
			t.Errorf("CheckURL(%.60q) = %v, want ok %v", c.url, err, c.ok)
		}
	}
}
