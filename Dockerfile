# Multi-stage build: a static llmgate binary (pure Go, SQLite included, no cgo) on a distroless
# base, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what `llmgate --version` and llmgate_build_info report (docker build --build-arg VERSION=1.4.0).
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags nomsgpack -ldflags="-s -w -X main.version=${VERSION}" -o /out/llmgate ./cmd/llmgate && \
    CGO_ENABLED=0 go build -trimpath -tags nomsgpack -ldflags="-s -w" -o /out/mockllm ./cmd/mockllm && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/llmgate /out/mockllm /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
# Both listeners on every interface of the container: the public API for the load balancer, and
# the admin listener for Prometheus (/metrics) and kubelet (/health/live, /health/ready), which
# need no token. Everything under /admin/ still needs the admin token (and is off without one):
# publish 8081 on a private network only, never to the internet.
ENV LLMGATE_DATA_DIR=/data LLMGATE_LISTEN=:8080 LLMGATE_ADMIN_LISTEN=:8081
# The only directories the process writes: /data (the SQLite file, the usage spool, dead
# letters) and /tmp (multipart uploads while their request runs). The root filesystem may be
# read-only: docker run --read-only -v llmgate-data:/data --tmpfs /tmp …
VOLUME ["/data", "/tmp"]
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/llmgate"]
CMD ["serve"]
