# Multi-stage build: a static llmgate binary (pure Go, SQLite included, no cgo) on a distroless
# base, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what `llmgate --version` and llmgate_build_info report (docker build --build-arg VERSION=1.4.0).
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/llmgate ./cmd/llmgate && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mockllm ./cmd/mockllm && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/llmgate /out/mockllm /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
ENV LLMGATE_DATA_DIR=/data LLMGATE_LISTEN=:8080 LLMGATE_ADMIN_LISTEN=127.0.0.1:8081
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/llmgate"]
CMD ["serve"]
