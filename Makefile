# Build, test and benchmark llmgate. `make bench` runs the gateway benchmark described in
# BENCHMARKS.md; pass flags through BENCHFLAGS, e.g. make bench BENCHFLAGS='--rounds 1 --duration 3s'.

GO ?= go
BENCHFLAGS ?=
# VERSION is what `llmgate --version` and llmgate_build_info report.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# TAGS: nomsgpack leaves gin's MessagePack codec (github.com/ugorji/go), which llmgate never uses,
# out of the binary (see docs/operations.md, "Building").
TAGS ?= nomsgpack

.PHONY: build test bench demo

# build makes what the Dockerfile ships: static (no cgo), stripped, without local paths.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags "$(TAGS)" -ldflags "-s -w -X main.version=$(VERSION)" -o bin/llmgate ./cmd/llmgate
	CGO_ENABLED=0 $(GO) build -trimpath -tags "$(TAGS)" -ldflags "-s -w" -o bin/mockllm ./cmd/mockllm

test:
	bash scripts/test.sh

bench: build
	bin/llmgate bench --mockllm bin/mockllm $(BENCHFLAGS)

demo:
	$(GO) run ./cmd/llmgate demo
