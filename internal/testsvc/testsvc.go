// Package testsvc starts real PostgreSQL and Redis servers on free loopback ports for tests, so
// tests run against the real thing and never against an in-process fake.
//
// A package creates its services in TestMain and stops them after m.Run; a server starts lazily,
// the first time a test asks for its address, so a run filtered with -run pays only for what it
// uses:
//
//	var pg *testsvc.PostgresServer
//
//	func TestMain(m *testing.M) {
//		var stop func()
//		pg, stop = testsvc.Postgres()
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		dsn := pg.NewDatabase(t) // an empty database of its own, dropped when t ends
//		…
//	}
//
// Environment:
//   - LLMGATE_TEST_DATABASE_URL, LLMGATE_TEST_REDIS_ADDR and LLMGATE_TEST_REDIS_CLUSTER_ADDRS
//     (comma separated) point the tests at servers that are already running instead.
//   - When a server binary is missing, the tests that need it are skipped with a message, unless
//     CI=true, where they fail: a CI run must never go green by skipping.
//
// Servers run as direct children of the test binary with a parent-death signal, so they die with
// it even when a test panics or the run times out; temporary directories left by such a run are
// removed by the next one.
package testsvc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tempPrefix names every temporary directory this package makes: tempPrefix + pid + "-" + kind.
const tempPrefix = "llmgate-testsvc-"

// startTimeout bounds how long a server may take to answer after it was started.
const startTimeout = 60 * time.Second

// unavailableError means a service cannot run here at all (a binary is missing): a skip locally,
// a failure under CI.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }

func unavailable(format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...)}
}

// require ends the test when a service could not be started: a skip when it is merely not
// installed here, a failure when it broke or when CI=true.
func require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var u *unavailableError
	if errors.As(err, &u) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: a missing service fails the run; scripts/test.sh installs it)", err)
		}
		t.Skipf("%v; skipping (scripts/test.sh installs it)", err)
	}
	t.Fatal(err)
}

// lookPath finds a binary on PATH, reporting a missing one as unavailable.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", unavailable("testsvc: %s not found on PATH", name)
	}
	return p, nil
}

// tempDir makes a temporary directory that sweepStale can recognise as ours.
func tempDir(kind string) (string, error) {
	sweepOnce.Do(sweepStale)
	dir, err := os.MkdirTemp("", tempPrefix+strconv.Itoa(os.Getpid())+"-"+kind+"-")
	if err != nil {
		return "", fmt.Errorf("testsvc: temp dir: %w", err)
	}
	return dir, nil
}

var sweepOnce sync.Once

// sweepStale removes directories left by test processes that no longer exist (a run that was
// killed never reached its stop functions). Their servers already died with them.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, d := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), tempPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago. Another process may
// take one before the server binds it; callers retry the start on a fresh set.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testsvc: free port: %w", err)
		}
		defer l.Close() // held until all are picked, so they are distinct
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is a server started as a child of the test binary.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string        // file holding its stdout and stderr
	done chan struct{} // closed once it has exited
}

// startProcess starts bin with args, logging to logPath. cred, when not nil, runs it as another
// user (PostgreSQL refuses to run as root). The parent-death signal kills it if the test binary
// dies without stopping it.
func startProcess(bin string, args []string, logPath string, cred *syscall.Credential) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("testsvc: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testsvc: start %s: %w", filepath.Base(bin), err)
	}
	p := &process{name: filepath.Base(bin), cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls ready until it succeeds, the process exits, or startTimeout passes.
func (p *process) waitReady(ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("testsvc: %s exited during start: %s", p.name, p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("testsvc: %s did not answer within %s: %w; log: %s", p.name, startTimeout, err, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and waits for the exit, killing the process if it takes more than 10 s.
func (p *process) stop(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// retry runs start up to three times: a start usually fails only because another process took
// the free port in between.
func retry(start func() error) error {
	var err error
	for range 3 {
		if err = start(); err == nil {
			return nil
		}
	}
	return err
}
