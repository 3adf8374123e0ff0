package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// imageSpec is what the Dockerfile's final stage sets for the process it runs.
type imageSpec struct {
	env        map[string]string
	user       string
	volumes    []string
	expose     []string
	entrypoint []string
	cmd        []string
}

// parseDockerfile reads the instructions of the Dockerfile's last stage that shape the process:
// ENV, USER, VOLUME, EXPOSE, ENTRYPOINT and CMD (exec form). Continuation lines are joined.
func parseDockerfile(t *testing.T, path string) imageSpec {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var spec imageSpec
	for _, l := range lines {
		instr, args, _ := strings.Cut(l, " ")
		args = strings.TrimSpace(args)
		execForm := func() []string {
			var v []string
			if err := json.Unmarshal([]byte(args), &v); err != nil {
				t.Fatalf("Dockerfile: %s %s: want the exec (JSON) form: %v", instr, args, err)
			}
			return v
		}
		switch strings.ToUpper(instr) {
		case "FROM": // a new stage: only the last one's settings reach the image
			spec = imageSpec{env: map[string]string{}}
		case "ENV":
			for _, kv := range strings.Fields(args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %s: want KEY=value pairs", args)
				}
				spec.env[k] = strings.Trim(v, `"`)
			}
		case "USER":
			spec.user = args
		case "VOLUME":
			if strings.HasPrefix(args, "[") {
				spec.volumes = append(spec.volumes, execForm()...)
			} else {
				spec.volumes = append(spec.volumes, strings.Fields(args)...)
			}
		case "EXPOSE":
			spec.expose = append(spec.expose, strings.Fields(args)...)
		case "ENTRYPOINT":
			spec.entrypoint = execForm()
		case "CMD":
			spec.cmd = execForm()
		}
	}
	return spec
}

// TestDockerImageServesProbesAndMetrics checks the image as far as it can be checked without a
// container engine: its last stage runs as a non-root user, declares every directory the process
// writes as a volume (so the root filesystem may be read-only), and listens on every interface
// for both listeners, so that Prometheus can scrape /metrics and kubelet probe /health/* on the
// admin listener. Then it runs the binary with exactly the image's command and environment,
// except for the listen addresses (loopback ports here), the data directory (a temporary one)
// and an admin token (a deployment's secret, without which it refuses to start): /metrics and
// /health/* answer without a token, /admin/ does not.
func TestDockerImageServesProbesAndMetrics(t *testing.T) {
	spec := parseDockerfile(t, "../../Dockerfile")
	if uid, err := strconv.Atoi(strings.Split(spec.user, ":")[0]); spec.user == "" || spec.user == "root" || (err == nil && uid == 0) {
		t.Errorf("Dockerfile USER %q: want a non-root user", spec.user)
	}
	dataDir := spec.env["LLMGATE_DATA_DIR"]
	for _, dir := range []string{dataDir, "/tmp"} { // the store, spool and dead letters; uploads
		if dir == "" || !slices.Contains(spec.volumes, dir) {
			t.Errorf("Dockerfile VOLUME %v: want %q among them, so it stays writable with a read-only root filesystem", spec.volumes, dir)
		}
	}
	for _, name := range []string{"LLMGATE_LISTEN", "LLMGATE_ADMIN_LISTEN"} {
		host, port, err := net.SplitHostPort(spec.env[name])
		if err != nil {
			t.Errorf("Dockerfile ENV %s=%q: %v", name, spec.env[name], err)
			continue
		}
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("Dockerfile ENV %s=%q: want every interface (\":%s\"), or nothing outside the container reaches it", name, spec.env[name], port)
		}
		if !slices.Contains(spec.expose, port) {
			t.Errorf("Dockerfile EXPOSE %v: want %s (%s)", spec.expose, port, name)
		}
	}
	if len(spec.entrypoint) == 0 || !strings.HasSuffix(spec.entrypoint[0], "/llmgate") {
		t.Fatalf("Dockerfile ENTRYPOINT %v: want the llmgate binary", spec.entrypoint)
	}
	if t.Failed() {
		return
	}

	args := append(slices.Clone(spec.entrypoint[1:]), spec.cmd...)
	cmd := exec.Command(llmgateBinary(t), args...)
	for _, kv := range os.Environ() { // the image's environment, not the test runner's
		if !strings.HasPrefix(kv, "LLMGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range spec.env {
		switch k {
		case "LLMGATE_LISTEN", "LLMGATE_ADMIN_LISTEN":
			v = "127.0.0.1:0"
		case "LLMGATE_DATA_DIR":
			v = t.TempDir()
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Without an admin token the admin listener may not face a network: the image's
	// configuration (its environment as it is) is refused, with the reason, rather than serving
	// /metrics to anyone. Checked in process: the refused address is every interface.
	imageEnv := func(name string) (string, bool) { v, ok := spec.env[name]; return v, ok }
	if cfg, err := loadConfig("", imageEnv); err != nil {
		t.Errorf("the image's configuration: %v", err)
	} else if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "LLMGATE_ADMIN_TOKEN") {
		t.Errorf("the image's configuration without an admin token: %v, want a refusal naming LLMGATE_ADMIN_TOKEN", err)
	}
	cmd.Env = append(cmd.Env, "LLMGATE_ADMIN_TOKEN="+testAdminToken)
	p := startGatewayProcess(t, cmd)

	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get(p.adminURL+"/metrics", ""); st != 200 || !strings.Contains(body, "llmgate_build_info") {
		t.Errorf("admin /metrics without a token: HTTP %d, want 200 with llmgate_build_info", st)
	}
	for _, path := range []string{"/health/live", "/health/ready"} {
		if st, body := get(p.adminURL+path, ""); st != 200 || !strings.Contains(body, `"status":"ok"`) {
			t.Errorf("admin %s without a token: HTTP %d %s, want 200 ok", path, st, body)
		}
		if st, body := get(p.url+path, ""); st != 200 {
			t.Errorf("public %s: HTTP %d %s, want 200", path, st, body)
		}
	}
	if st, body := get(p.adminURL+"/admin/keys", ""); st != http.StatusUnauthorized {
		t.Errorf("admin /admin/keys without a token: HTTP %d %s, want 401", st, body)
	}
	if st, body := get(p.adminURL+"/admin/keys", testAdminToken); st != 200 {
		t.Errorf("admin /admin/keys with the token: HTTP %d %s, want 200", st, body)
	}
}
