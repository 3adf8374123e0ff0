package gateway_test

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// fullBacklogListener listens on loopback with an accept queue of one and fills it with a
// connection nobody accepts: Linux then drops further SYNs, so a dial to it hangs until its own
// timeout — a real connect timeout, without a packet leaving the machine.
func fullBacklogListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "full-backlog")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Skip("the kernel accepted a connection past the full accept queue: no way to get a connect timeout here")
	}
	return addr
}

// TestConnectTimeoutFailsOver: a deployment that cannot be connected to in time has never seen
// the request, so the next deployment answers it even though the first does not set
// retry_on_timeout; the timeout still counts against the first deployment.
func TestConnectTimeoutFailsOver(t *testing.T) {
	addr := fullBacklogListener(t)
	good := newSwitchable(t, mock.Options{})
	e := newEnv(t, withRouting(
		[]namedProvider{openaiProvider("blackhole", "http://"+addr), openaiProvider("good", good.Server.URL)},
		providers.ModelConfig{Name: "unreachable", Deployments: []providers.DeploymentConfig{
			{ID: "unreachable-first", Provider: "blackhole", Model: "m", Priority: 0,
				Timeouts: providers.Timeouts{Connect: 200 * time.Millisecond}},
			{ID: "unreachable-second", Provider: "good", Model: "m", Priority: 1}}}))

	for _, stream := range []bool{false, true} {
		before := good.Seen.Load()
		start := time.Now()
		status, dep, body := e.chat("unreachable", "", stream)
		if status != 200 || dep != "unreachable-second" {
			t.Fatalf("stream %v: status %d by %q (%s), want 200 by unreachable-second", stream, status, dep, body)
		}
		if good.Seen.Load() != before+1 {
			t.Errorf("stream %v: the second deployment saw %d requests, want 1", stream, good.Seen.Load()-before)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("stream %v: took %v: the connect timeout did not cut the dial short", stream, took)
		}
	}
	if st := e.deploymentStatus("unreachable-first"); st.Failed != 2 {
		t.Errorf("/v1/providers: the unreachable deployment has %d failures, want 2", st.Failed)
	}
}
