#!/usr/bin/env bash
# The project's test command. CI runs it through .ci/run, as root, on a clean clone, with CI=true.
# It only installs what the tests need; the tests start and stop their own PostgreSQL and Redis
# servers on free loopback ports (internal/testsvc), so nothing here starts a service.
#
#   scripts/test.sh                 install what is missing, then vet, gofmt check, import rules,
#                                   promtool check and unit tests of the Prometheus rules, the
#                                   Helm chart (helm template, kubeconform), go test -race,
#                                   static build, short fuzz runs
#   scripts/test.sh --install-only  only the install step
#
# It prints each phase as it starts and, at the end (on failure too), a summary: the time of each
# phase, and from `go test -json` (read by scripts/testsummary) the packages, the tests passed,
# failed and skipped, and the fuzz executions per target. A failed test's output is printed as
# soon as the test ends.
set -euo pipefail

cd "$(dirname "$0")/.."

# Every go command here (and the ones the tests run) builds what make build and the Dockerfile
# ship: without gin's MessagePack codec (docs/operations.md, "Building").
export GOFLAGS="-tags=nomsgpack${GOFLAGS:+ $GOFLAGS}"

# The summary's state: finished phases as "name|seconds|result", the phase running, and the
# counts scripts/testsummary appends (one line per go test run).
work=$(mktemp -d)
counts="$work/counts"
phases=()
phase_name=""
phase_start=$SECONDS

# phase ends the phase running (it succeeded) and starts the next.
phase() {
	end_phase ok
	phase_name=$1
	phase_start=$SECONDS
	echo "test.sh: ── phase: $1"
}

end_phase() {
	if [ -n "$phase_name" ]; then
		phases+=("$phase_name|$((SECONDS - phase_start))|$1")
		echo "test.sh: ── $phase_name: $1 ($((SECONDS - phase_start))s)"
		phase_name=""
	fi
}

# summary runs at exit, whatever the exit (status: $1, else the exit's): the phase running then
# failed unless the status is 0. A signal that ends the script (a CI timeout's SIGTERM, ^C) is a
# failure: bash runs the EXIT trap with the status of the last command that finished, which may
# be 0, so the signals have traps of their own.
summary() {
	local status=${1:-$?}
	trap - EXIT INT TERM HUP
	if [ "$status" -eq 0 ]; then end_phase ok; else end_phase FAILED; fi
	echo
	echo "test.sh: ── summary"
	local p name secs result
	for p in "${phases[@]}"; do
		IFS='|' read -r name secs result <<<"$p"
		printf 'test.sh:   %-50s %5ss  %s\n' "$name" "$secs" "$result"
	done
	printf 'test.sh:   %-50s %5ss\n' "total" "$SECONDS"
	if [ -s "$counts" ]; then
		sed 's/^/test.sh:   /' "$counts"
	fi
	if [ "$status" -eq 0 ]; then echo "test.sh: PASS"; else echo "test.sh: FAIL (exit status $status)"; fi
	rm -rf "$work"
	exit "$status"
}
trap summary EXIT
trap 'summary 130' INT
trap 'summary 143' TERM
trap 'summary 129' HUP

phase install

PG_BIN=/usr/lib/postgresql/15/bin

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install installs Debian packages without letting them start services: a policy-rc.d that
# exits 101 forbids it for the duration (redis-server and postgresql would otherwise start on their
# default ports). A policy-rc.d that was there before is put back afterwards.
apt_install() {
	echo "test.sh: installing $*"
	local policy=/usr/sbin/policy-rc.d saved=""
	if [ -e "$policy" ]; then
		saved=$(mktemp)
		as_root cp -p "$policy" "$saved"
	fi
	restore_policy() {
		if [ -n "$saved" ]; then as_root mv "$saved" "$policy"; else as_root rm -f "$policy"; fi
	}
	trap 'st=$?; restore_policy; summary "$st"' EXIT
	printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
	as_root chmod 755 "$policy"
	as_root apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
	restore_policy
	trap summary EXIT
}

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
	apt_install redis-server
	# Some setups start it anyway; a server on 6379 is not ours, and no test may depend on it.
	if redis-cli -p 6379 ping >/dev/null 2>&1; then
		echo "test.sh: stopping the redis-server the package started on 6379"
		as_root service redis-server stop >/dev/null 2>&1 || redis-cli -p 6379 shutdown nosave || true
	fi
fi

if [ ! -x "$PG_BIN/postgres" ] || [ ! -x "$PG_BIN/initdb" ]; then
	apt_install postgresql-15
fi
for bin in initdb postgres; do
	if [ ! -x "$PG_BIN/$bin" ]; then
		echo "test.sh: PostgreSQL 15 binary $PG_BIN/$bin is missing" >&2
		exit 1
	fi
done

# Prometheus (the Debian package brings prometheus and promtool): promtool checks and unit-tests
# the rule files below, and cmd/llmgate's dashboard test runs a Prometheus server on a free
# loopback port (never the package's own service on 9090, which policy-rc.d keeps from starting).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
	apt_install --no-install-recommends prometheus
fi
for bin in prometheus promtool; do
	if ! command -v "$bin" >/dev/null; then
		echo "test.sh: $bin is missing after installing the Debian package prometheus" >&2
		exit 1
	fi
done

# The demo test (cmd/llmgate) runs the demo's Node snippet with the official openai package, and
# the Messages tests the official Anthropic one (@anthropic-ai/sdk), kept in a cache directory
# outside the work tree and pinned so runs are reproducible.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	apt_install nodejs npm
fi
export LLMGATE_NODE_SDK_DIR="${LLMGATE_NODE_SDK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llmgate/node-sdk}"
if [ ! -f "$LLMGATE_NODE_SDK_DIR/node_modules/openai/package.json" ] || [ ! -f "$LLMGATE_NODE_SDK_DIR/node_modules/@anthropic-ai/sdk/package.json" ] || [ ! -f "$LLMGATE_NODE_SDK_DIR/node_modules/eventsource/package.json" ] || [ ! -f "$LLMGATE_NODE_SDK_DIR/node_modules/playwright-core/package.json" ]; then
	echo "test.sh: installing the openai and Anthropic Node SDKs, eventsource (the event streams' client test) and playwright-core (the console's browser tests) in $LLMGATE_NODE_SDK_DIR"
	mkdir -p "$LLMGATE_NODE_SDK_DIR"
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$LLMGATE_NODE_SDK_DIR" --no-audit --no-fund --loglevel=error openai@6.30.1 @anthropic-ai/sdk@1.17.0 eventsource@5.1.5 playwright-core@1.65.1
fi

# The console's browser tests (TestConsole*, cmd/llmgate) drive Debian's chromium through
# playwright-core, which cannot download a browser of its own here.
if ! command -v chromium >/dev/null; then
	apt_install --no-install-recommends chromium
fi
export LLMGATE_CHROMIUM="${LLMGATE_CHROMIUM:-$(command -v chromium)}"

# Helm and kubeconform, pinned, built from the Go module proxy into a cache directory outside the
# work tree (the first build takes a few minutes; later runs reuse it), and the Kubernetes JSON
# schemas kubeconform validates against, made from the OpenAPI documents of the k8s.io/kubernetes
# module by scripts/k8sschemas: no tool or schema is downloaded from anywhere else. TestHelmChart
# (cmd/llmgate) renders the chart with $LLMGATE_HELM.
HELM_VERSION=v4.3.2 KUBECONFORM_VERSION=v0.8.0 K8S_VERSION=v1.36.3
tools="${XDG_CACHE_HOME:-$HOME/.cache}/llmgate/tools"
export LLMGATE_HELM="$tools/helm-$HELM_VERSION/helm"
if [ ! -x "$LLMGATE_HELM" ]; then
	echo "test.sh: building helm $HELM_VERSION from the Go module proxy"
	GOBIN="$(dirname "$LLMGATE_HELM")" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
KUBECONFORM="$tools/kubeconform-$KUBECONFORM_VERSION/kubeconform"
if [ ! -x "$KUBECONFORM" ]; then
	echo "test.sh: building kubeconform $KUBECONFORM_VERSION from the Go module proxy"
	GOBIN="$(dirname "$KUBECONFORM")" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
# Named after the generator's own hash too, so a change to it makes the schemas again.
K8S_SCHEMAS="$tools/k8s-schemas-$K8S_VERSION-$(sha256sum scripts/k8sschemas/main.go | cut -c1-12)"
if [ ! -f "$K8S_SCHEMAS/deployment-apps-v1.json" ]; then
	echo "test.sh: making the Kubernetes $K8S_VERSION JSON schemas from k8s.io/kubernetes's OpenAPI documents"
	k8s_dir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	go run ./scripts/k8sschemas -in "$k8s_dir/api/openapi-spec/v3" -out "$K8S_SCHEMAS.tmp"
	rm -rf "$K8S_SCHEMAS" && mv "$K8S_SCHEMAS.tmp" "$K8S_SCHEMAS"
fi

if [ "${1:-}" = "--install-only" ]; then
	exit 0
fi

phase "go vet"
go vet ./...

phase gofmt
unformatted=$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*' \
	-print0 | xargs -0 -r gofmt -l)
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt -w needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi

phase "import rules"
bash scripts/importrules.sh

phase "prometheus rules (promtool)"
# The rule files parse and their expressions type-check; every alert's unit tests (firing and
# not firing) pass.
promtool check rules configs/prometheus/*.yaml
promtool test rules configs/prometheus/tests/*.yaml

phase "helm chart (helm lint, helm template, kubeconform)"
# The chart renders with its default values and with every optional part on, and what it renders
# validates against the Kubernetes API's schemas (strict: unknown fields are errors). The
# ServiceMonitor and the PrometheusRule are skipped: they are Prometheus Operator CRDs, not in
# the Kubernetes schemas. The Compose file is validated by TestComposeFile (cmd/llmgate).
chart=deploy/helm/llmgate
for values in "" "$chart/ci/all-on-values.yaml"; do
	echo "test.sh: chart with ${values:-its default values}"
	"$LLMGATE_HELM" lint --strict "$chart" ${values:+-f "$values"}
	"$LLMGATE_HELM" template llmgate "$chart" ${values:+-f "$values"} >"$work/chart.yaml"
	"$KUBECONFORM" -strict -summary -schema-location "$K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
		-skip ServiceMonitor,PrometheusRule "$work/chart.yaml"
done

phase "go test -race"
go build -o "$work/testsummary" ./scripts/testsummary
module=$(go list -m)
go test -race -count=1 -timeout 20m -json ./... | "$work/testsummary" -label "go test" -counts "$counts" -trim "$module/"

phase "static build (CGO_ENABLED=0, as the Dockerfile)"
bindir=$(mktemp -d)
CGO_ENABLED=0 go build -o "$bindir/" ./cmd/llmgate ./cmd/mockllm
if command -v file >/dev/null && file "$bindir/llmgate" | grep -q "dynamically linked"; then
	echo "test.sh: llmgate is not statically linked" >&2
	exit 1
fi
rm -rf "$bindir"

phase "fuzz targets"
# Short fuzz runs of the parsers (about 5 s each here); run longer ones by hand with a larger
# -fuzztime. The budgets are execution counts, not durations: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a bare "context deadline exceeded" when the deadline meets a busy
# worker (golang/go#75804, fixed in Go 1.27), and a count has no deadline to race.
for target in "FuzzRewriteEvent ./gateway 15000" "FuzzBodyCheck ./gateway 15000" "FuzzStream ./providers/anthropic 60000" \
	"FuzzRequest ./providers/anthropic 100000" "FuzzGeminiStream ./providers/gemini 40000" \
	"FuzzGeminiRequest ./providers/gemini 150000" "FuzzReader ./internal/sse 150000" \
	"FuzzGeminiSchema ./providers/gemini 20000 100" "FuzzResponsesRequest ./providers/responses 100000" \
	"FuzzResponsesStream ./providers/responses 60000" "FuzzMessagesRequest ./providers/messages 100000" \
	"FuzzMessagesStream ./providers/messages 60000" "FuzzSpool ./gateway 10000" "FuzzDuration ./internal/wav 50000" \
	"FuzzValid ./internal/jsoncheck 50000" "FuzzEventStream ./providers/bedrock 40000" \
	"FuzzDecodeEntry ./internal/replay 20000" "FuzzChunkText ./gateway 50000" \
	"FuzzResponsesFields ./gateway 50000"; do
	# An optional fourth field bounds the minimisation of each new input, in executions: a
	# target with inputs of a few KB and a costly body can otherwise spend the default 60 s
	# minimising one input.
	set -- $target
	echo "test.sh: fuzz $1 ($3 executions)"
	go test -json -run='^$' -fuzz="^$1\$" -fuzztime="$3x" ${4:+-fuzzminimizetime="$4x"} "$2" |
		"$work/testsummary" -label fuzz -counts "$counts" -trim "$module/"
done
