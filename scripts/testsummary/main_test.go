package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCounts feeds recorded `go test -json` output: a package that passes, fails, skips and has
// a failing subtest (mix), one whose test panics (pan), one that does not build (bad), one
// without tests (nofiles), and a fuzz run of internal/sse.
func TestCounts(t *testing.T) {
	in := append(readFixture(t, "mixed.jsonl"), readFixture(t, "fuzz.jsonl")...)
	in = append(in, "a line that is not JSON\n"...)
	var out bytes.Buffer
	c := summarise(bytes.NewReader(in), &out)
	want := Counts{
		Packages: 5, PackagesFailed: 2, PackagesNoTests: 1, BuildFailures: 1,
		Tests:     result{Passed: 3, Failed: 3, Skipped: 1}, // mix: Pass, Fail, Skip, Sub; pan: OK, Panics; FuzzReader
		Subtests:  result{Passed: 1, Failed: 1},
		FuzzExecs: map[string]int64{"github.com/llmgate/llmgate/internal/sse FuzzReader": 3000},
		Unparsed:  1,
	}
	if c.Packages != want.Packages || c.PackagesFailed != want.PackagesFailed || c.PackagesNoTests != want.PackagesNoTests ||
		c.BuildFailures != want.BuildFailures || c.Tests != want.Tests || c.Subtests != want.Subtests || c.Unparsed != want.Unparsed ||
		len(c.FuzzExecs) != 1 || c.FuzzExecs["github.com/llmgate/llmgate/internal/sse FuzzReader"] != 3000 {
		t.Errorf("counts:\n got %+v\nwant %+v", c, want)
	}
	if !c.failed() {
		t.Error("failed() = false for a run with failures")
	}
	text := out.String()
	for _, s := range []string{
		"bad/bad.go:3:23: cannot use", // the build error
		"--- FAIL: TestFail (0.00s)\n    mix_test.go:6: context line\n    mix_test.go:6: want 1, got 2\n", // header first, then the output
		"--- SKIP: TestSkip (0.00s)\n    mix_test.go:7: no database here\n",
		"mix_test.go:10: sub b broke",
		"panic: assignment to entry in nil map",
		"pan_test.go:6", // the panic's stack
		"FAIL\texample.com/demo/pan",
		"ok  \tgithub.com/llmgate/llmgate/internal/sse",
		"?   \texample.com/demo/nofiles\t[no test files]",
		"fuzz: elapsed: 0s, execs: 3000",
		"a line that is not JSON\n",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("the output lacks %q:\n%s", s, text)
		}
	}
	for _, s := range []string{"=== RUN", "mix_test.go:5: fine", "--- PASS"} {
		if strings.Contains(text, s) {
			t.Errorf("the output has %q, which go test without -v does not print:\n%s", s, text)
		}
	}
	line := c.line("go test", "github.com/llmgate/llmgate/")
	wantLine := "go test: 5 packages (2 FAILED, 1 build FAILED, 1 without tests); tests: 3 passed, 3 failed, 1 skipped; subtests: 1 passed, 1 failed, 0 skipped; internal/sse FuzzReader: 3000 executions"
	if line != wantLine {
		t.Errorf("summary line:\n got %s\nwant %s", line, wantLine)
	}
}

// TestPassingRun: a run without failures is not failed, and its line has no failure notes.
func TestPassingRun(t *testing.T) {
	c := summarise(bytes.NewReader(readFixture(t, "fuzz.jsonl")), io.Discard)
	if c.failed() {
		t.Errorf("failed() = true for %+v", c)
	}
	if l, want := c.line("fuzz", "github.com/llmgate/llmgate/"), "fuzz: internal/sse FuzzReader: 3000 executions, ok"; l != want {
		t.Errorf("summary line:\n got %s\nwant %s", l, want)
	}
}

// TestFailureShownBeforeTheEnd: a failed test's output is written as soon as its result arrives,
// while go test is still running, not when the input ends.
func TestFailureShownBeforeTheEnd(t *testing.T) {
	var failLines []string
	for _, l := range strings.SplitAfter(string(readFixture(t, "mixed.jsonl")), "\n") {
		if strings.Contains(l, `"Package":"example.com/demo/mix","Test":"TestFail"`) {
			failLines = append(failLines, l)
		}
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		summarise(inR, outW)
		outW.Close()
	}()
	go func() {
		for _, l := range failLines {
			if _, err := io.WriteString(inW, l); err != nil {
				return
			}
		}
	}()
	seen := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "want 1, got 2") {
				seen <- true
				io.Copy(io.Discard, outR)
				return
			}
		}
		seen <- false
	}()
	select {
	case ok := <-seen:
		if !ok {
			t.Fatal("the output ended without the failure")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failure was not written while the input was still open")
	}
	inW.Close()
	<-done
}
