package gateway_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
)

// TestMain fails the package when a goroutine outlives its tests: the gateway starts goroutines
// per request and per stream (relays, attempt clocks, lease renewals), and one left behind by a
// request path is a leak in production too. An aside worker waiting for its next task is not
// one: the workers are kept between requests by design, and end after asideIdle (one still
// running a task is reported).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(gatewaytest.IgnoreAsideWorkers); err != nil {
			os.Stderr.WriteString("goroutine leak after the gateway tests: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
