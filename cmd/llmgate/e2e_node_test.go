package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeSDKDir is where scripts/test.sh installs the Node SDKs (openai, @anthropic-ai/sdk). Without
// it the test is skipped, and in CI it fails.
func nodeSDKDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LLMGATE_NODE_SDK_DIR")
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("LLMGATE_NODE_SDK_DIR is not set: run the suite through scripts/test.sh")
		}
		t.Skip("LLMGATE_NODE_SDK_DIR not set (scripts/test.sh sets it)")
	}
	return dir
}

// runNodeScript writes script into dir, where the SDKs are installed so that its imports resolve,
// under a name made of prefix and the test's name; runs it with node, env added to the
// environment, for at most a minute; fails the test when node fails, and returns what the
// script printed.
func runNodeScript(t *testing.T, dir, prefix, script string, env ...string) []byte {
	t.Helper()
	f := filepath.Join(dir, prefix+"-"+strings.ReplaceAll(t.Name(), "/", "_")+".mjs")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", f)
	cmd.Env = append(os.Environ(), env...)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node script failed: %v\n%s", err, got)
	}
	return got
}

// wantNodeLines checks that a node script printed exactly the lines of want.
func wantNodeLines(t *testing.T, got []byte, want []string) {
	t.Helper()
	if lines := strings.Split(strings.TrimSpace(string(got)), "\n"); strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("node script printed:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
