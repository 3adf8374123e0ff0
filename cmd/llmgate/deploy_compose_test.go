package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// absRepoRoot is the repository's root as an absolute path.
func absRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// loadCompose loads deploy/compose/compose.yaml as `docker compose` would, validated against the
// Compose specification's schema (embedded in compose-go), with an empty environment so every
// ${VAR:-default} takes its default.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir := filepath.Join(absRepoRoot(t), "deploy", "compose")
	details := types.ConfigDetails{WorkingDir: dir, ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{}}
	p, err := loader.LoadWithContext(context.Background(), details)
	if err != nil {
		t.Fatalf("deploy/compose/compose.yaml: %v", err)
	}
	return p
}

// composeGateways are the gateway replicas of the compose file.
var composeGateways = []string{"gateway-1", "gateway-2"}

// TestComposeFile: the compose file is valid Compose, has the pieces an operator expects (two
// gateway replicas behind a load balancer, PostgreSQL, Redis, the mock upstream, Prometheus,
// Grafana), runs the gateways as in production (read-only root filesystem, /data a volume, /tmp
// a tmpfs, an admin token), and every file it mounts exists and is what its consumer reads: the
// gateways' config loads and validates as `llmgate serve` would, nginx sends to both replicas,
// Prometheus scrapes both admin listeners and loads the rules of configs/prometheus (checked by
// promtool where installed), Grafana's provisioning points at this Prometheus and the dashboards'
// mount.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	root := absRepoRoot(t)
	for _, name := range append(slices.Clone(composeGateways), "lb", "postgres", "redis", "mockllm", "prometheus", "grafana") {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("compose: no service %q", name)
		}
	}
	if t.Failed() {
		return
	}

	// Every bind mount and config file exists.
	mounted := map[string]string{} // container path → host path, per service: "service:target"
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			mounted[name+":"+v.Target] = v.Source
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s at %s: %v", name, v.Source, v.Target, err)
			}
		}
		for _, c := range s.Configs {
			cfg, ok := p.Configs[c.Source]
			if !ok {
				t.Errorf("service %s: config %q is not defined", name, c.Source)
				continue
			}
			if _, err := os.Stat(cfg.File); err != nil {
				t.Errorf("service %s: config %q: %v", name, c.Source, err)
			}
			mounted[name+":"+c.Target] = cfg.File
		}
	}

	// The gateways: production settings, and a config `llmgate serve` accepts.
	for _, name := range composeGateways {
		s := p.Services[name]
		if !s.ReadOnly || !slices.Contains(s.Tmpfs, "/tmp") {
			t.Errorf("%s: read_only %v, tmpfs %v: want a read-only root filesystem with /tmp a tmpfs", name, s.ReadOnly, s.Tmpfs)
		}
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeVolume && v.Target == "/data" }) {
			t.Errorf("%s: want a named volume at /data (its usage spool)", name)
		}
		env := func(k string) (string, bool) {
			v, ok := s.Environment[k]
			if !ok || v == nil {
				return "", false
			}
			return *v, true
		}
		if tok, _ := env("LLMGATE_ADMIN_TOKEN"); len(tok) < 32 {
			t.Errorf("%s: LLMGATE_ADMIN_TOKEN %q: want a default of at least 32 characters", name, tok)
		}
		cfgPath := mounted[name+":"+s.Command[len(s.Command)-1]]
		if cfgPath == "" {
			t.Fatalf("%s: command %v: its --config file is not mounted", name, s.Command)
		}
		cfg, err := loadConfig(cfgPath, env)
		if err == nil {
			err = cfg.validate()
		}
		if err != nil {
			t.Errorf("%s: %s: %v", name, cfgPath, err)
			continue
		}
		if _, port, _ := net.SplitHostPort(cfg.AdminListen); !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == atoi(port) }) {
			t.Errorf("%s: admin listener %s is not published", name, cfg.AdminListen)
		}
		if cfg.DataDir != "/data" {
			t.Errorf("%s: data_dir %q, want /data (the volume)", name, cfg.DataDir)
		}
	}

	// nginx: both replicas behind it, streams unbuffered.
	conf, err := os.ReadFile(mounted["lb:/etc/nginx/conf.d/default.conf"])
	if err != nil {
		t.Fatalf("lb: nginx config: %v", err)
	}
	if strings.Count(string(conf), "{") != strings.Count(string(conf), "}") {
		t.Errorf("nginx.conf: unbalanced braces")
	}
	servers := regexp.MustCompile(`(?m)^\s*server\s+([^\s;]+)`).FindAllStringSubmatch(string(conf), -1)
	var upstreams []string
	for _, m := range servers {
		upstreams = append(upstreams, m[1])
	}
	for _, g := range composeGateways {
		if !slices.Contains(upstreams, g+":8080") {
			t.Errorf("nginx.conf: upstream servers %v: want %s:8080", upstreams, g)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*proxy_buffering\s+off;`).Match(conf) {
		t.Errorf("nginx.conf: want proxy_buffering off, or streams arrive in lumps")
	}

	// Prometheus: both admin listeners scraped, the rules of configs/prometheus loaded.
	promPath := mounted["prometheus:/etc/prometheus/prometheus.yml"]
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, promPath, &prom)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, g := range composeGateways {
		if !slices.Contains(targets, g+":8081") {
			t.Errorf("prometheus.yml: targets %v: want %s:8081 (its admin listener)", targets, g)
		}
	}
	rulesDir := mounted["prometheus:/etc/prometheus/rules"]
	if rulesDir != filepath.Join(root, "configs", "prometheus") {
		t.Errorf("prometheus: rules mounted from %q, want configs/prometheus", rulesDir)
	}
	var ruleFiles []string
	for _, pattern := range prom.RuleFiles { // relative to the config file, as Prometheus reads them
		m, _ := filepath.Glob(filepath.Join(rulesDir, strings.TrimPrefix(pattern, "rules/")))
		ruleFiles = append(ruleFiles, m...)
	}
	if !slices.Contains(ruleFiles, filepath.Join(rulesDir, "alerts.yaml")) {
		t.Errorf("prometheus.yml: rule_files %v load %v: want configs/prometheus/alerts.yaml among them", prom.RuleFiles, ruleFiles)
	}
	t.Run("promtool check config", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("promtool not found (CI=true: scripts/test.sh installs the Debian prometheus package)")
			}
			t.Skip("promtool not found; scripts/test.sh installs it (Debian package prometheus)")
		}
		// The container's layout: the config file with the rules directory beside it.
		dir := t.TempDir()
		raw, err := os.ReadFile(promPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(rulesDir, filepath.Join(dir, "rules")); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	})

	// Grafana: provisioning from configs/grafana, pointing at this Prometheus and at the
	// dashboards' mount.
	t.Run("grafana provisioning", func(t *testing.T) {
		prov := mounted["grafana:/etc/grafana/provisioning"]
		files, _ := filepath.Glob(filepath.Join(prov, "datasources", "*.yaml"))
		var urls []string
		for _, f := range files {
			var ds struct {
				Datasources []struct {
					Type string `yaml:"type"`
					URL  string `yaml:"url"`
				} `yaml:"datasources"`
			}
			readYAML(t, f, &ds)
			for _, d := range ds.Datasources {
				urls = append(urls, d.Type+" "+d.URL)
			}
		}
		if !slices.Contains(urls, "prometheus http://prometheus:9090") {
			t.Errorf("grafana data sources %v: want prometheus http://prometheus:9090", urls)
		}
		files, _ = filepath.Glob(filepath.Join(prov, "dashboards", "*.yaml"))
		var paths []string
		for _, f := range files {
			var db struct {
				Providers []struct {
					Options struct {
						Path string `yaml:"path"`
					} `yaml:"options"`
				} `yaml:"providers"`
			}
			readYAML(t, f, &db)
			for _, p := range db.Providers {
				paths = append(paths, p.Options.Path)
			}
		}
		for _, path := range paths {
			src := mounted["grafana:"+path]
			if src == "" {
				t.Errorf("grafana: dashboards provisioned from %s, which nothing mounts", path)
				continue
			}
			if js, _ := filepath.Glob(filepath.Join(src, "*.json")); len(js) == 0 {
				t.Errorf("grafana: %s (mounted at %s) holds no dashboard JSON", src, path)
			}
		}
		if len(paths) == 0 {
			t.Errorf("grafana: no dashboard provider in %s/dashboards", prov)
		}
	})
}

// readYAML decodes a YAML file, failing the test when it cannot.
func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// atoi is strconv.Atoi for ports known to be numbers (0 otherwise).
func atoi(s string) uint32 {
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}
