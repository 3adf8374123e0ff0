package main

import (
	"io"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: --version and version print the build; /metrics carries llmgate_build_info.
func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "1.2.3-test" // as -ldflags "-X main.version=1.2.3-test" sets it
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out := cliOK(t, args...)
		if !strings.HasPrefix(out, "llmgate 1.2.3-test\n") || !strings.Contains(out, "go:       "+runtime.Version()) ||
			!strings.Contains(out, "commit:") || !strings.Contains(out, "built:") {
			t.Errorf("llmgate %s printed:\n%s", args[0], out)
		}
	}
	e := newEnv(t)
	resp, err := e.http.Get(e.app.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := regexp.MustCompile(`(?m)^llmgate_build_info\{goversion="` + regexp.QuoteMeta(runtime.Version()) + `",revision="[^"]*",version="1\.2\.3-test"\} 1$`)
	if !want.Match(raw) {
		t.Errorf("/metrics lacks llmgate_build_info; its llmgate_ lines:\n%s", grepLines(string(raw), "llmgate_build"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
