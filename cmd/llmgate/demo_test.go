package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snippet cuts the lines between two headings of the demo text, unindented.
func snippet(t *testing.T, text, from, to string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, "\n"+from)
	if !ok {
		t.Fatalf("demo text has no %q section", from)
	}
	_, rest, _ = strings.Cut(rest, "\n")
	body, _, ok := strings.Cut(rest, "\n"+to)
	if !ok {
		t.Fatalf("demo text has no %q after %q", to, from)
	}
	var out []string
	for _, l := range strings.Split(body, "\n") {
		out = append(out, strings.TrimPrefix(l, "  "))
	}
	return strings.Join(out, "\n")
}

// TestDemoSnippetsWork runs the curl and Node snippets exactly as the demo prints them.
func TestDemoSnippetsWork(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Models = c.Models[:1] })
	var out bytes.Buffer
	if err := printDemo(context.Background(), &out, e.app); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, testAdminToken) || !strings.Contains(text, "sk-lg-") {
		t.Fatalf("demo text lacks the admin token or the key:\n%s", text)
	}

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl is not installed")
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", snippet(t, text, "curl:", "Python"))
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl snippet failed: %v\n%s", err, got)
		}
		if !bytes.Contains(got, []byte(`"object":"chat.completion"`)) || !bytes.Contains(got, []byte("data: [DONE]")) {
			t.Errorf("curl snippet output lacks a completion or a finished stream:\n%s", got)
		}
	})

	t.Run("console", func(t *testing.T) {
		// The console's line names a URL that answers the console's page, with its CSP.
		_, line, ok := strings.Cut(text, "\n  Console ")
		if !ok {
			t.Fatalf("the demo text has no Console line:\n%s", text)
		}
		url := strings.Fields(line)[0]
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") || !bytes.Contains(body, []byte("<html")) {
			t.Errorf("GET %s: HTTP %d, CSP %q:\n%s", url, resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
		}
	})

	t.Run("more keys", func(t *testing.T) {
		// The hint's lines, pasted into a shell: an export of the admin URL and token, then a
		// keys create. They run here through the CLI entry with exactly that environment.
		hint := snippet(t, text, "More keys", "Metrics:")
		_, heading, _ := strings.Cut(text, "\nMore keys")
		heading, _, _ = strings.Cut(heading, "\n  ")
		if heading = strings.ReplaceAll(heading, "\n", " "); !strings.Contains(heading, "go build -o llmgate ./cmd/llmgate") || !strings.Contains(hint, "go install github.com/llmgate/llmgate/cmd/llmgate@latest") {
			t.Errorf("the hint does not say how to get the llmgate binary:\n%s", heading)
		}
		var args []string
		exported := map[string]bool{}
		for _, line := range strings.Split(hint, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) > 1 && f[0] == "export":
				for _, kv := range f[1:] {
					k, v, _ := strings.Cut(kv, "=")
					t.Setenv(k, v)
					exported[k] = true
				}
			case len(f) > 1 && f[0] == "llmgate":
				args = f[1:]
			}
		}
		if !exported["LLMGATE_ADMIN_URL"] || !exported["LLMGATE_ADMIN_TOKEN"] || os.Getenv("LLMGATE_ADMIN_URL") != e.app.adminURL {
			t.Fatalf("the hint does not export LLMGATE_ADMIN_URL=%s and LLMGATE_ADMIN_TOKEN:\n%s", e.app.adminURL, hint)
		}
		if len(args) < 2 || args[0] != "keys" || args[1] != "create" {
			t.Fatalf("the hint has no llmgate keys create line:\n%s", hint)
		}
		secret(t, cliOK(t, args...))
	})

	t.Run("node SDK", func(t *testing.T) {
		dir := os.Getenv("LLMGATE_NODE_SDK_DIR") // scripts/test.sh installs the openai package there
		if dir == "" {
			if os.Getenv("CI") == "true" {
				t.Fatal("LLMGATE_NODE_SDK_DIR is not set: run the suite through scripts/test.sh")
			}
			t.Skip("LLMGATE_NODE_SDK_DIR not set (scripts/test.sh sets it)")
		}
		f := filepath.Join(dir, "demo-"+strings.ReplaceAll(t.Name(), "/", "_")+".mjs")
		if err := os.WriteFile(f, []byte(snippet(t, text, "Node (", "More keys")), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		got, err := exec.CommandContext(ctx, "node", f).CombinedOutput()
		if err != nil {
			t.Fatalf("node snippet failed: %v\n%s", err, got)
		}
		// one non-stream answer line, then the streamed answer: 20 words each
		lines := strings.Split(strings.TrimSpace(string(got)), "\n")
		if len(lines) != 2 || len(strings.Fields(lines[0])) != 20 || lines[0] != lines[1] {
			t.Errorf("node snippet printed:\n%s", got)
		}
	})
}

// TestDemoListensOnLoopback: demo's public listener defaults to 127.0.0.1:8080, since it holds a
// live key; the flag, LLMGATE_LISTEN and the config's listen each still choose, and serve keeps
// :8080.
func TestDemoListensOnLoopback(t *testing.T) {
	cases := []struct {
		name, file string
		env        map[string]string
		line       commandLine
		want       string
	}{
		{"demo", "", nil, commandLine{demo: true}, "127.0.0.1:8080"},
		{"demo with a config without listen", "log: {level: info}\n", nil, commandLine{demo: true}, "127.0.0.1:8080"},
		{"demo with LLMGATE_LISTEN", "", map[string]string{"LLMGATE_LISTEN": ":9090"}, commandLine{demo: true}, ":9090"},
		{"demo with the config's listen", "listen: ':8080'\n", nil, commandLine{demo: true}, ":8080"},
		{"demo with --listen", "", nil, commandLine{demo: true, listen: "0.0.0.0:7070"}, "0.0.0.0:7070"},
		{"serve", "", nil, commandLine{}, ":8080"},
		{"serve with a config without listen", "log: {level: info}\n", nil, commandLine{}, ":8080"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeConfig(t, tc.file)
			}
			cfg, err := loadConfig(path, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			tc.line.apply(&cfg)
			if cfg.Listen != tc.want {
				t.Errorf("listen = %q, want %q", cfg.Listen, tc.want)
			}
		})
	}
}
