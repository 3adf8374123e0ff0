package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// chartDir is the Helm chart, from this package's directory.
var chartDir = filepath.Join(repoRoot, "deploy", "helm", "llmgate")

// TestChartRulesMatchConfigs: the chart ships the rule files of configs/prometheus (a chart reads
// only files inside itself) in files/prometheus, byte for byte, and no other.
func TestChartRulesMatchConfigs(t *testing.T) {
	ruleFiles := func(dir string) map[string][]byte {
		paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(p)] = b
		}
		return out
	}
	src := ruleFiles(filepath.Join(repoRoot, "configs", "prometheus"))
	dst := ruleFiles(filepath.Join(chartDir, "files", "prometheus"))
	if len(src) == 0 {
		t.Fatal("no rule files in configs/prometheus")
	}
	if !reflect.DeepEqual(src, dst) {
		t.Errorf("deploy/helm/llmgate/files/prometheus differs from configs/prometheus; copy them again:\n" +
			"  rm deploy/helm/llmgate/files/prometheus/*.yaml && cp configs/prometheus/*.yaml deploy/helm/llmgate/files/prometheus/")
	}
}

// manifest is one rendered Kubernetes object.
type manifest map[string]any

// get follows a path of map keys and list indexes ("spec", "template", 0 …).
func (m manifest) get(path ...any) any {
	var cur any = map[string]any(m)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := cur.(map[string]any)
			cur = mm[k]
		case int:
			l, _ := cur.([]any)
			if k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

// helmTemplate renders the chart with the given values files and returns its objects by
// "Kind/name".
func helmTemplate(t *testing.T, helm string, values ...string) map[string]manifest {
	t.Helper()
	args := []string{"template", "llmgate", chartDir}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	objs := map[string]manifest{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var raw map[string]any // not a manifest: yaml.v3 would decode nested maps as manifests too
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if raw == nil {
			continue
		}
		m := manifest(raw)
		objs[fmt.Sprintf("%v/%v", m["kind"], m.get("metadata", "name"))] = m
	}
	return objs
}

// helmBinary is the helm that scripts/test.sh builds from the Go module proxy
// ($LLMGATE_HELM): a skip without it, a failure under CI=true.
func helmBinary(t *testing.T) string {
	t.Helper()
	helm := os.Getenv("LLMGATE_HELM")
	if helm != "" {
		if _, err := exec.LookPath(helm); err == nil {
			return helm
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("LLMGATE_HELM=%q is not an executable helm (CI=true: scripts/test.sh builds it)", helm)
	}
	t.Skipf("LLMGATE_HELM=%q is not an executable helm; scripts/test.sh builds it from the Go module proxy", helm)
	return ""
}

// TestHelmChart renders the chart with its default values and with every optional part on and
// checks what an operator relies on: the pod runs non-root with a read-only root filesystem and
// no capabilities, /data and /tmp are emptyDirs, the probes hit /health/live and /health/ready
// on the admin port, credentials come only from the named Secret, resources are requested, the
// HPA and the PDB select the Deployment, the admin listener has its own ClusterIP Service, the
// config it ships loads as `llmgate serve` would load it, and the optional ServiceMonitor and
// PrometheusRule (the rules of configs/prometheus) appear only when asked for. Schema validation
// of the same output (kubeconform) is a phase of scripts/test.sh.
func TestHelmChart(t *testing.T) {
	helm := helmBinary(t)
	def := helmTemplate(t, helm)
	all := helmTemplate(t, helm, filepath.Join(chartDir, "ci", "all-on-values.yaml"))

	const name = "llmgate"
	for _, objs := range []map[string]manifest{def, all} {
		d, ok := objs["Deployment/"+name]
		if !ok {
			t.Fatalf("no Deployment/%s among %v", name, slices.Sorted(maps.Keys(objs)))
		}
		pod := manifest(d.get("spec", "template", "spec").(map[string]any))
		if pod.get("securityContext", "runAsNonRoot") != true {
			t.Errorf("pod securityContext: %v, want runAsNonRoot", pod.get("securityContext"))
		}
		c := manifest(pod.get("containers", 0).(map[string]any))
		sc := c.get("securityContext")
		if c.get("securityContext", "readOnlyRootFilesystem") != true || c.get("securityContext", "allowPrivilegeEscalation") != false ||
			!reflect.DeepEqual(c.get("securityContext", "capabilities", "drop"), []any{"ALL"}) {
			t.Errorf("container securityContext %v: want a read-only root filesystem, no privilege escalation, every capability dropped", sc)
		}
		mounts := map[string]string{}
		for _, m := range c.get("volumeMounts").([]any) {
			mm := m.(map[string]any)
			mounts[mm["mountPath"].(string)] = mm["name"].(string)
		}
		for _, path := range []string{"/data", "/tmp"} {
			vol := ""
			for _, v := range pod.get("volumes").([]any) {
				if vm := v.(map[string]any); vm["name"] == mounts[path] && vm["emptyDir"] != nil {
					vol = mounts[path]
				}
			}
			if vol == "" {
				t.Errorf("%s: want an emptyDir mounted there (writable with a read-only root filesystem); mounts %v", path, mounts)
			}
		}
		for probe, path := range map[string]string{"livenessProbe": "/health/live", "readinessProbe": "/health/ready", "startupProbe": "/health/live"} {
			if c.get(probe, "httpGet", "path") != path || c.get(probe, "httpGet", "port") != "admin" {
				t.Errorf("%s: %v, want GET %s on the admin port", probe, c.get(probe), path)
			}
		}
		if c.get("resources", "requests", "cpu") == nil || c.get("resources", "requests", "memory") == nil {
			t.Errorf("resources %v: want cpu and memory requests", c.get("resources"))
		}
		env := map[string]string{}
		for _, e := range c.get("env").([]any) {
			em := manifest(e.(map[string]any))
			if em.get("value") != nil {
				t.Errorf("env %v: a literal value; every variable comes from the Secret", em["name"])
			}
			if em.get("valueFrom", "secretKeyRef", "name") != "llmgate" {
				t.Errorf("env %v: %v, want a key of the existing Secret llmgate", em["name"], em.get("valueFrom"))
			}
			env[em["name"].(string)] = "set-by-the-test-" + strings.Repeat("x", 32)
		}
		for _, k := range []string{"LLMGATE_ADMIN_TOKEN", "LLMGATE_DATABASE_URL", "LLMGATE_REDIS_URL"} {
			if _, ok := env[k]; !ok {
				t.Errorf("env: no %s", k)
			}
		}
		env["LLMGATE_DATABASE_URL"], env["LLMGATE_REDIS_URL"] = "postgres://u:p@db.invalid:5432/llmgate", "redis://redis.invalid:6379/0"

		// The config it ships, with the Secret's variables, is one `llmgate serve` accepts.
		cm, ok := objs["ConfigMap/"+name]
		if !ok {
			t.Fatalf("no ConfigMap/%s", name)
		}
		path := filepath.Join(t.TempDir(), "llmgate.yaml")
		if err := os.WriteFile(path, []byte(cm.get("data", "llmgate.yaml").(string)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err == nil {
			err = cfg.validate()
		}
		if err != nil {
			t.Errorf("the chart's config: %v", err)
		} else if cfg.AdminListen != ":8081" || cfg.Listen != ":8080" || cfg.DataDir != "/data" {
			t.Errorf("the chart's config: listen %q, admin_listen %q, data_dir %q", cfg.Listen, cfg.AdminListen, cfg.DataDir)
		}

		admin, ok := objs["Service/"+name+"-admin"]
		if !ok || admin.get("spec", "type") != "ClusterIP" {
			t.Errorf("Service/%s-admin: %v, want a ClusterIP Service of the admin listener", name, admin.get("spec"))
		}
		if pdb, ok := objs["PodDisruptionBudget/"+name]; !ok || !reflect.DeepEqual(pdb.get("spec", "selector", "matchLabels"), d.get("spec", "selector", "matchLabels")) {
			t.Errorf("PodDisruptionBudget/%s: missing, or it selects other pods", name)
		}
	}
	if hpa, ok := def["HorizontalPodAutoscaler/"+name]; !ok || hpa.get("spec", "scaleTargetRef", "name") != name {
		t.Errorf("default values: HorizontalPodAutoscaler/%s missing or not aimed at the Deployment", name)
	}
	if def["Deployment/"+name].get("spec", "replicas") != nil {
		t.Errorf("default values: the Deployment sets replicas while the HPA owns them")
	}
	for _, k := range []string{"ServiceMonitor/" + name, "PrometheusRule/" + name} {
		if _, ok := def[k]; ok {
			t.Errorf("default values: %s rendered; it needs the Prometheus Operator's CRDs and is off by default", k)
		}
		if _, ok := all[k]; !ok {
			t.Errorf("all parts on: no %s", k)
		}
	}
	if sm := all["ServiceMonitor/"+name]; sm != nil && (sm.get("spec", "endpoints", 0, "port") != "admin" || sm.get("spec", "endpoints", 0, "path") != "/metrics") {
		t.Errorf("ServiceMonitor: %v, want /metrics on the admin port", sm.get("spec", "endpoints"))
	}

	// The PrometheusRule holds every group of configs/prometheus, unchanged.
	var want []any
	paths, _ := filepath.Glob(filepath.Join(repoRoot, "configs", "prometheus", "*.yaml"))
	for _, p := range paths {
		var f struct {
			Groups []any `yaml:"groups"`
		}
		readYAML(t, p, &f)
		want = append(want, f.Groups...)
	}
	if pr := all["PrometheusRule/"+name]; pr != nil && !reflect.DeepEqual(pr.get("spec", "groups"), want) {
		t.Errorf("PrometheusRule groups differ from those of configs/prometheus")
	}
}
