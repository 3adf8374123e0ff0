package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/testsvc"
)

// The package's PostgreSQL, Redis and Redis Cluster, each started on first use by a test that
// needs it.
var (
	pg       *testsvc.PostgresServer
	rdb      *testsvc.RedisServer
	rcluster *testsvc.RedisClusterServer
)

func TestMain(m *testing.M) {
	var stopPG, stopRedis, stopCluster func()
	pg, stopPG = testsvc.Postgres()
	rdb, stopRedis = testsvc.Redis()
	rcluster, stopCluster = testsvc.RedisCluster()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // the gateway binary built for child-process tests
	}
	stopPG()
	stopRedis()
	stopCluster()
	if code == 0 {
		if err := goleak.Find(gatewaytest.IgnoreAsideWorkers); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak after the e2e suite:", err)
			code = 1
		}
	}
	os.Exit(code)
}
