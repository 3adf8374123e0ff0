package testsvc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a standalone Redis for one test package, started on first use, persistence off.
type RedisServer struct {
	once  sync.Once
	addr  string
	err   error
	nodes nodeSet
}

// Redis returns the package's Redis server (LLMGATE_TEST_REDIS_ADDR when set) and the function
// that stops it and removes its files; call that after m.Run.
func Redis() (*RedisServer, func()) {
	r := &RedisServer{}
	return r, r.nodes.stop
}

// Addr returns the server's host:port, starting it on first use. It skips or fails t when the
// server cannot run (see the package doc). Tests sharing the server keep apart by key prefix or
// clean up with FLUSHALL when they run alone.
func (r *RedisServer) Addr(t testing.TB) string {
	t.Helper()
	r.once.Do(func() {
		if addr := os.Getenv("LLMGATE_TEST_REDIS_ADDR"); addr != "" {
			r.addr = addr
			return
		}
		bin, err := lookPath("redis-server")
		if err != nil {
			r.err = err
			return
		}
		r.err = retry(func() error {
			r.nodes.stop() // a failed attempt's leftovers
			ports, err := freePorts(1)
			if err != nil {
				return err
			}
			addr, err := r.nodes.start(bin, ports[0], nil)
			r.addr = addr
			return err
		})
	})
	require(t, r.err)
	return r.addr
}

// Stop kills the server as a crash would (clients see their connections reset), keeping its port
// so Start can bring it back: for tests of Redis outages. Every test sharing the server sees the
// outage, so such tests use a server of their own. A server from LLMGATE_TEST_REDIS_ADDR cannot
// be stopped: the test is skipped.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.Addr(t)
	if os.Getenv("LLMGATE_TEST_REDIS_ADDR") != "" {
		t.Skip("testsvc: Redis comes from LLMGATE_TEST_REDIS_ADDR and cannot be stopped")
	}
	r.nodes.halt(0)
}

// Start restarts a stopped server on the same port with the same settings, empty (persistence
// is off), and waits until it answers. Starting a running server does nothing.
func (r *RedisServer) Start(t testing.TB) {
	t.Helper()
	r.Addr(t)
	if os.Getenv("LLMGATE_TEST_REDIS_ADDR") != "" {
		t.Skip("testsvc: Redis comes from LLMGATE_TEST_REDIS_ADDR and cannot be restarted")
	}
	if err := r.nodes.run(0, r.addr); err != nil {
		t.Fatal(err)
	}
}

// Pause freezes the server with SIGSTOP, as a hung or overloaded Redis would be: connections
// stay open and commands are accepted into socket buffers, but nothing is answered until
// Resume; what was sent meanwhile runs then, even for clients that gave up and hung up. A
// server from LLMGATE_TEST_REDIS_ADDR cannot be paused: the test is skipped. Pause registers a
// Resume with t.Cleanup, so a failing test never leaves the server frozen.
func (r *RedisServer) Pause(t testing.TB) {
	t.Helper()
	r.Addr(t)
	if os.Getenv("LLMGATE_TEST_REDIS_ADDR") != "" {
		t.Skip("testsvc: Redis comes from LLMGATE_TEST_REDIS_ADDR and cannot be paused")
	}
	if err := r.nodes.signal(0, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.nodes.signal(0, syscall.SIGCONT) })
}

// Resume undoes Pause (SIGCONT).
func (r *RedisServer) Resume(t testing.TB) {
	t.Helper()
	if err := r.nodes.signal(0, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// RedisClusterServer is a Redis Cluster of three masters (no replicas) for one test package,
// started on first use: enough for keys of different hash slots to live on different nodes.
type RedisClusterServer struct {
	once  sync.Once
	addrs []string
	err   error
	nodes nodeSet
}

// RedisCluster returns the package's Redis Cluster (LLMGATE_TEST_REDIS_CLUSTER_ADDRS when set) and
// the function that stops it and removes its files; call that after m.Run.
func RedisCluster() (*RedisClusterServer, func()) {
	c := &RedisClusterServer{}
	return c, c.nodes.stop
}

// Addrs returns the host:port of every master, starting the cluster on first use. It skips or
// fails t when the cluster cannot run (see the package doc).
func (c *RedisClusterServer) Addrs(t testing.TB) []string {
	t.Helper()
	c.once.Do(func() {
		if addrs := os.Getenv("LLMGATE_TEST_REDIS_CLUSTER_ADDRS"); addrs != "" {
			c.addrs = strings.Split(addrs, ",")
			return
		}
		c.err = c.start()
	})
	require(t, c.err)
	return slices.Clone(c.addrs)
}

const clusterSize = 3

func (c *RedisClusterServer) start() error {
	server, err := lookPath("redis-server")
	if err != nil {
		return err
	}
	cli, err := lookPath("redis-cli")
	if err != nil {
		return err
	}
	var addrs []string
	err = retry(func() error {
		c.nodes.stop()
		addrs = addrs[:0]
		// Each node needs a client port and a cluster bus port; the bus port is set explicitly
		// rather than left at port+10000, which nobody checked was free.
		ports, err := freePorts(2 * clusterSize)
		if err != nil {
			return err
		}
		for i := range clusterSize {
			addr, err := c.nodes.start(server, ports[2*i], []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "5000",
				"--cluster-port", strconv.Itoa(ports[2*i+1]),
			})
			if err != nil {
				return err
			}
			addrs = append(addrs, addr)
		}
		return nil
	})
	if err != nil {
		c.nodes.stop()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.nodes.stop()
		return fmt.Errorf("testsvc: redis-cli --cluster create: %w: %s", err, out)
	}
	if err := waitClusterOK(ctx, addrs); err != nil {
		c.nodes.stop()
		return err
	}
	c.addrs = addrs
	return nil
}

// waitClusterOK waits until every node reports cluster_state:ok and knows all the others, so the
// first test does not meet a CLUSTERDOWN or a MOVED to a node its client has not heard of yet.
func waitClusterOK(ctx context.Context, addrs []string) error {
	want := "cluster_known_nodes:" + strconv.Itoa(len(addrs))
	for _, addr := range addrs {
		client := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := client.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) {
				break
			}
			select {
			case <-ctx.Done():
				client.Close()
				return fmt.Errorf("testsvc: redis cluster not ok (last: %v %q): %w", err, info, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		client.Close()
	}
	return nil
}

// nodeSet is the redis-server processes of one service and their directories.
type nodeSet struct {
	mu    sync.Mutex
	procs []*process // nil while a node is halted
	dirs  []string
	argv  [][]string // each node's command line, so a halted node restarts exactly as it was
}

// start runs one redis-server on port with persistence off and extra arguments, and waits for it
// to answer PING.
func (n *nodeSet) start(bin string, port int, extra []string) (string, error) {
	dir, err := tempDir("redis")
	if err != nil {
		return "", err
	}
	argv := append([]string{
		bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
	}, extra...)
	n.mu.Lock()
	n.procs, n.dirs, n.argv = append(n.procs, nil), append(n.dirs, dir), append(n.argv, argv)
	i := len(n.procs) - 1
	n.mu.Unlock()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return addr, n.run(i, addr)
}

// run starts node i, unless it is running, and waits for it to answer PING on addr.
func (n *nodeSet) run(i int, addr string) error {
	n.mu.Lock()
	if n.procs[i] != nil {
		n.mu.Unlock()
		return nil
	}
	proc, err := startProcess(n.argv[i][0], n.argv[i][1:], filepath.Join(n.dirs[i], "redis.log"), nil)
	n.procs[i] = proc
	n.mu.Unlock()
	if err != nil {
		return err
	}
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	err = proc.waitReady(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return client.Ping(ctx).Err()
	})
	if err != nil {
		n.halt(i) // so a later run tries again
	}
	return err
}

// halt kills node i as a crash would, keeping its port and directory for run.
func (n *nodeSet) halt(i int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.procs[i]; p != nil {
		p.kill()
		n.procs[i] = nil
	}
}

// signal sends sig to node i, which must be running.
func (n *nodeSet) signal(i int, sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i >= len(n.procs) || n.procs[i] == nil {
		return fmt.Errorf("testsvc: redis node %d is not running", i)
	}
	return n.procs[i].cmd.Process.Signal(sig)
}

// stop kills every node (their data is thrown away) and removes their directories.
func (n *nodeSet) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		if p != nil {
			p.kill()
		}
	}
	for _, d := range n.dirs {
		os.RemoveAll(d)
	}
	n.procs, n.dirs, n.argv = nil, nil, nil
}
