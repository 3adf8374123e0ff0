# Build, test and benchmark llmgate. `make bench` runs the gateway benchmark described in
# BENCHMARKS.md; pass flags through BENCHFLAGS, e.g. make bench BENCHFLAGS='--rounds 1 --duration 3s'.

GO ?= go
BENCHFLAGS ?=
# VERSION is what `llmgate --version` and llmgate_build_info report.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build test bench demo

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/llmgate ./cmd/llmgate
	$(GO) build -o bin/mockllm ./cmd/mockllm

test:
	bash scripts/test.sh

bench: build
	bin/llmgate bench --mockllm bin/mockllm $(BENCHFLAGS)

demo:
	$(GO) run ./cmd/llmgate demo
