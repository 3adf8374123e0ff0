package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version is the release this binary is; a release build sets it with
// -ldflags "-X main.version=1.4.0". Otherwise it is the module version `go install …@v1.4.0`
// stamps, or "dev".
var version = "dev"

// buildInfo is what the binary knows of its own build.
type buildInfo struct {
	Version   string
	Revision  string // VCS commit, "unknown" when the build was not stamped (go run, go test)
	Time      string // commit time, "unknown" likewise
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string
}

// readBuildInfo reads the version variable and what the Go toolchain stamped into the binary.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: "unknown", Time: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionText is what `llmgate --version` prints.
func versionText() string {
	b := readBuildInfo()
	rev := b.Revision
	if b.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("llmgate %s\ncommit:   %s\nbuilt:    %s\ngo:       %s\n", b.Version, rev, b.Time, b.GoVersion)
}

// newBuildInfoGauge is llmgate_build_info, always 1: its labels tell dashboards and alerts which
// build each replica runs.
func newBuildInfoGauge() prometheus.Gauge {
	b := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "llmgate_build_info",
		Help:        "The running build: version, VCS revision and Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion}})
	g.Set(1)
	return g
}
