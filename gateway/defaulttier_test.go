package gateway_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/quota"
)

// TestDefaultTierRefusalWarns: a key without a user counts against the default tier; when that
// limit, which nobody chose for the key, refuses a request, the log says so at WARN, naming the
// key and how to give it limits, once a minute per key however many requests are refused. A
// refusal by a tier the key's user has is the operator's choice and logs nothing.
func TestDefaultTierRefusalWarns(t *testing.T) {
	logs := &testlog.Buffer{}
	qo := quota.Options{DefaultTier: "free", Tiers: map[string]quota.Limits{"free": {RPM: 2}, "small": {RPM: 1}}}
	e := newEnv(t, func(c *envConfig) {
		c.quota = &qo
		c.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	service := e.newKey(keySpec{Name: "billing-service"})
	statuses := []int{}
	for range 5 {
		statuses = append(statuses, e.chatStatus(service.Key, "gpt-test"))
	}
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusOK || statuses[2] != http.StatusTooManyRequests || statuses[4] != http.StatusTooManyRequests {
		t.Fatalf("statuses %v: want 2 answers, then 429 from the default tier's 2 rpm", statuses)
	}
	warns := logs.Lines("level=WARN", service.ID)
	if len(warns) != 1 {
		t.Fatalf("%d WARN lines naming the key, want exactly 1 for 3 refusals:\n%s", len(warns), strings.Join(warns, "\n"))
	}
	for _, want := range []string{"default tier", "dimension=rpm", "tier=free", "limit=2", "no user"} {
		if !strings.Contains(warns[0], want) {
			t.Errorf("warning lacks %q: %s", want, warns[0])
		}
	}

	chosen := e.newKey(keySpec{Name: "user-key", UserID: "small-user", Tier: "small"})
	e.chatStatus(chosen.Key, "gpt-test")
	if s := e.chatStatus(chosen.Key, "gpt-test"); s != http.StatusTooManyRequests {
		t.Fatalf("second request of a user on a 1 rpm tier: HTTP %d, want 429", s)
	}
	if w := logs.Lines("level=WARN", chosen.ID); len(w) != 0 {
		t.Errorf("a refusal by the user's own tier was logged as unchosen: %s", strings.Join(w, "\n"))
	}
}
