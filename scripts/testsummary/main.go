// Command testsummary reads `go test -json` on stdin, writes a readable account of it to stdout
// as it arrives, and counts what happened for the test command's final summary.
//
//	go test -json ./... | testsummary -label "go test" -counts FILE
//
// The account is what `go test` prints without -v: a line per package (ok, FAIL, no test files),
// build errors, and the whole output of every test that failed or was skipped, printed as soon as
// that test ends. Progress lines of fuzzing ("fuzz: elapsed: …") pass straight through. Lines that
// are not JSON pass through unchanged.
//
// At the end of the input it prints one summary line (packages; tests and subtests passed, failed
// and skipped; fuzz executions per target) and appends it to the -counts file. It exits 1 when a
// test, a package or a build failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	label := flag.String("label", "go test", "what the summary line is about")
	counts := flag.String("counts", "", "file the summary line is appended to")
	trim := flag.String("trim", "", "prefix trimmed from package paths in the summary (the module path and a slash)")
	flag.Parse()
	c := summarise(os.Stdin, os.Stdout)
	line := c.line(*label, *trim)
	fmt.Println(line)
	if *counts != "" {
		f, err := os.OpenFile(*counts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintln(f, line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
	}
	if c.failed() {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json's TestEvent, plus the build events).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
	// FailedBuild names the package whose build failed, on a package's fail event.
	FailedBuild string
}

// result counts the results of one kind (top-level tests, or subtests).
type result struct{ Passed, Failed, Skipped int }

func (r *result) add(action string) {
	switch action {
	case "pass":
		r.Passed++
	case "fail":
		r.Failed++
	case "skip":
		r.Skipped++
	}
}

// Counts is what a run of `go test -json` did.
type Counts struct {
	Packages        int // with a final result
	PackagesFailed  int // tests failed, or the test binary did (a panic, a timeout)
	PackagesNoTests int
	BuildFailures   int    // packages whose test binary did not build
	Tests           result // top-level tests, fuzz targets included
	Subtests        result
	// FuzzExecs is the last execution count each fuzz target reported, by "package FuzzName".
	FuzzExecs map[string]int64
	// Unparsed counts the input lines that were not JSON (passed through).
	Unparsed int
}

func (c Counts) failed() bool {
	return c.PackagesFailed > 0 || c.BuildFailures > 0 || c.Tests.Failed > 0 || c.Subtests.Failed > 0
}

// line is the one-line summary. A run of fuzz targets alone says how many executions each made.
func (c Counts) line(label, trim string) string {
	var b strings.Builder
	if t := c.Tests; len(c.FuzzExecs) > 0 && t.Passed+t.Failed+t.Skipped == len(c.FuzzExecs) && c.Subtests == (result{}) && c.BuildFailures == 0 {
		result := "ok"
		if c.failed() {
			result = "FAILED"
		}
		b.WriteString(label)
		c.writeFuzz(&b, trim)
		fmt.Fprintf(&b, ", %s", result)
		return strings.Replace(b.String(), label+"; ", label+": ", 1)
	}
	fmt.Fprintf(&b, "%s: %d packages", label, c.Packages)
	var notes []string
	if c.PackagesFailed > 0 {
		notes = append(notes, fmt.Sprintf("%d FAILED", c.PackagesFailed))
	}
	if c.BuildFailures > 0 {
		notes = append(notes, fmt.Sprintf("%d build FAILED", c.BuildFailures))
	}
	if c.PackagesNoTests > 0 {
		notes = append(notes, fmt.Sprintf("%d without tests", c.PackagesNoTests))
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
	}
	fmt.Fprintf(&b, "; tests: %d passed, %d failed, %d skipped", c.Tests.Passed, c.Tests.Failed, c.Tests.Skipped)
	if s := c.Subtests; s != (result{}) {
		fmt.Fprintf(&b, "; subtests: %d passed, %d failed, %d skipped", s.Passed, s.Failed, s.Skipped)
	}
	c.writeFuzz(&b, trim)
	return b.String()
}

// writeFuzz adds the executions of each fuzz target, in name order.
func (c Counts) writeFuzz(b *strings.Builder, trim string) {
	targets := make([]string, 0, len(c.FuzzExecs))
	for t := range c.FuzzExecs {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	for _, t := range targets {
		fmt.Fprintf(b, "; %s: %d executions", strings.TrimPrefix(t, trim), c.FuzzExecs[t])
	}
}

// fuzzExecs matches the fuzzing engine's progress lines: "fuzz: elapsed: 3s, execs: 1234 (…".
var fuzzExecs = regexp.MustCompile(`^fuzz: elapsed: [^,]*, execs: (\d+)`)

// summarise reads `go test -json` from r to its end, writes the readable account to w as the
// input arrives, and returns the counts.
func summarise(r io.Reader, w io.Writer) Counts {
	c := Counts{FuzzExecs: map[string]int64{}}
	// out holds the output of each test still running, and of each package (its lines outside
	// any test), until the result says whether anyone needs to read it.
	out := map[string][]string{}
	key := func(e event) string { return e.Package + "\x00" + e.Test }
	emit := func(lines []string) {
		for _, l := range lines {
			io.WriteString(w, l)
		}
	}
	in := bufio.NewReader(r)
	for {
		raw, err := in.ReadString('\n')
		if raw != "" {
			var e event
			if !strings.HasPrefix(raw, "{") || json.Unmarshal([]byte(raw), &e) != nil || e.Action == "" {
				c.Unparsed++
				io.WriteString(w, withNewline(raw))
			} else {
				switch e.Action {
				case "build-output":
					io.WriteString(w, e.Output) // compiler errors: at once
				case "build-fail": // the package's fail event (FailedBuild) counts it
				case "output":
					switch {
					case fuzzExecs.MatchString(e.Output):
						m := fuzzExecs.FindStringSubmatch(e.Output)
						n, _ := strconv.ParseInt(m[1], 10, 64)
						c.FuzzExecs[e.Package+" "+e.Test] = n
						io.WriteString(w, e.Output)
					case strings.HasPrefix(e.Output, "fuzz: "):
						io.WriteString(w, e.Output)
					case e.Test == "" && packageResult(e.Output):
						io.WriteString(w, e.Output) // ok / FAIL / no test files: progress
					case e.Test == "" && (e.Output == "PASS\n" || e.Output == "FAIL\n"):
					case framing(e.Output):
					default:
						out[key(e)] = append(out[key(e)], e.Output)
					}
				case "pass", "fail", "skip":
					k := key(e)
					if e.Test == "" { // the package's result
						c.Packages++
						switch {
						case e.Action == "fail" && e.FailedBuild != "":
							c.BuildFailures++
						case e.Action == "fail":
							c.PackagesFailed++
							emit(out[k]) // a panic outside a test, a timeout, a TestMain failure
						case e.Action == "skip":
							c.PackagesNoTests++
						}
					} else {
						if strings.Contains(e.Test, "/") {
							c.Subtests.add(e.Action)
						} else {
							c.Tests.add(e.Action)
						}
						if e.Action != "pass" {
							emit(headerFirst(out[k], e))
						}
					}
					delete(out, k)
				}
			}
		}
		if err != nil {
			break
		}
	}
	// Output of tests that never ended (the input was cut: go test was killed): show it.
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		emit(out[k])
	}
	return c
}

// headerFirst moves a test's result line ("--- FAIL: TestX (0.01s)"), which test2json puts after
// the test's output, before it, as `go test` without -v prints it.
func headerFirst(lines []string, e event) []string {
	prefix := "--- " + strings.ToUpper(e.Action) + ": " + e.Test + " ("
	for i := len(lines) - 1; i > 0; i-- {
		if strings.HasPrefix(strings.TrimLeft(lines[i], " "), prefix) {
			out := make([]string, 0, len(lines))
			out = append(out, lines[i])
			out = append(out, lines[:i]...)
			return append(out, lines[i+1:]...)
		}
	}
	return lines
}

// packageResult reports whether a package-level output line is its result line.
func packageResult(s string) bool {
	return strings.HasPrefix(s, "ok  \t") || strings.HasPrefix(s, "FAIL\t") || strings.HasPrefix(s, "?   \t")
}

// framing reports test2json's framing lines, which `go test` without -v does not print.
func framing(s string) bool {
	for _, p := range []string{"=== RUN ", "=== PAUSE ", "=== CONT ", "=== NAME "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
