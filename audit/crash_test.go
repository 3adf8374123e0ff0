package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// crashChildEnv, when set, makes TestCrashChild the child process of TestKill9: it names the
// spool directory.
const crashChildEnv = "LLMGATE_AUDIT_CRASH_SPOOL"

// TestCrashChild records into a spool as fast as it can, against a sink that never answers and a
// queue of one, so that every record but two (one in the stuck writer, one in the queue) goes to
// the spool; after each hundredth
// Record call returns it prints the record's index. It runs until its parent kills it (or for a
// minute at most).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestKill9")
	}
	r, err := New(gatedSink{release: make(chan struct{})}, Options{SpoolDir: dir, QueueSize: 1, BatchSize: 1,
		SpoolSegmentBytes: 256 << 10}, quiet)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(time.Minute) // an orphan (its parent died first) must not fill the disk
	for i := 0; i < 1_000_000 && time.Now().Before(deadline); i++ {
		if !r.Record(rec(i)) {
			fmt.Fprintln(out, "refused", i)
		}
		if i%100 == 0 {
			fmt.Fprintln(out, i)
			out.Flush()
		}
	}
	os.Exit(2)
}

// TestKill9 is the package doc's kill -9 promise, for real: a process spooling records is
// killed with SIGKILL at an arbitrary moment; a new recorder on its spool directory replays every
// record whose Record call had returned but the two held in memory (the stuck writer's batch and
// the queue), and a record cut short by the kill, if any, is set aside, not fatal.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	opts := spoolOpts(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+opts.SpoolDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	last := -1
	for sc.Scan() {
		line := sc.Text()
		n, err := strconv.Atoi(line)
		if err != nil {
			if !strings.HasPrefix(line, "=== RUN") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", line)
			}
			continue
		}
		last = n
		if last >= 30000 {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL) // mid-append, most likely: the child never pauses
	cmd.Wait()
	if last < 30000 {
		t.Fatalf("child stopped at %d", last)
	}

	var ids = map[string]bool{}
	sink := &collectSink{seen: ids}
	r := mustNew(t, sink, opts)
	waitFor(t, 60*time.Second, "replay", func() bool { return r.Stats().SpoolBytes == 0 })
	closeRecorder(t, r, 10*time.Second)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	missing := 0
	for i := 0; i <= last; i++ {
		if !ids[rec(i).RequestID] {
			missing++
		}
	}
	missing -= 2 // the stuck writer's batch and the queue: memory, lost by the kill as documented
	entries := readDeadLetters(t, opts.DeadLetterDir)
	t.Logf("killed after %d records had returned; replayed %d; dead letters %d", last+1, len(ids), len(entries))
	if missing > 0 {
		t.Errorf("%d records whose Record had returned are missing after kill -9", missing)
	}
	for _, e := range entries {
		if e.Reason != reasonTornTail {
			t.Errorf("dead letter %+v: only a torn tail is expected", e)
		}
	}
	if len(entries) > 1 {
		t.Errorf("%d dead letters, want at most one torn tail", len(entries))
	}
	if files, _ := filepath.Glob(filepath.Join(opts.SpoolDir, "*"+segSuffix)); len(files) != 0 {
		t.Errorf("segments left: %v", files)
	}
}

// collectSink keeps the ids it was given.
type collectSink struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *collectSink) InsertUsage(_ context.Context, recs []store.UsageRecord) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range recs {
		if !s.seen[r.RequestID] {
			s.seen[r.RequestID] = true
			n++
		}
	}
	return n, nil
}
