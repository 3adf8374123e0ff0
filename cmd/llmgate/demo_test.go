package main

import (
	"bytes"
	"context"
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
