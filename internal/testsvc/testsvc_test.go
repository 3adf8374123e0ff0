package testsvc

import (
	"context"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

var (
	pg      *PostgresServer
	rdb     *RedisServer
	cluster *RedisClusterServer
)

func TestMain(m *testing.M) {
	var stopPG, stopRedis, stopCluster func()
	pg, stopPG = Postgres()
	rdb, stopRedis = Redis()
	cluster, stopCluster = RedisCluster()
	code := m.Run()
	stopPG()
	stopRedis()
	stopCluster()
	os.Exit(code)
}

func TestPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := pg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db string
	var version int
	if err := conn.QueryRow(ctx, `SELECT current_database(), current_setting('server_version_num')::int`).
		Scan(&db, &version); err != nil {
		t.Fatal(err)
	}
	if db == "postgres" {
		t.Errorf("NewDatabase connected to the maintenance database")
	}
	if version < 150000 {
		t.Errorf("server_version_num = %d, want PostgreSQL 15 or later", version)
	}
	if other := pg.NewDatabase(t); other == dsn {
		t.Errorf("two NewDatabase calls returned the same DSN %s", dsn)
	}
}

func TestRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := redis.NewClient(&redis.Options{Addr: rdb.Addr(t)})
	defer client.Close()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRedisCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs := cluster.Addrs(t)
	if len(addrs) != clusterSize {
		t.Fatalf("got %d nodes, want %d", len(addrs), clusterSize)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer client.Close()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Keys in different slots land on different masters: every node must take writes.
	var mu sync.Mutex
	masters := map[string]bool{}
	for _, key := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if err := client.Set(ctx, key, "1", time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
	}
	err := client.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.DBSize(ctx).Result()
		if n > 0 {
			mu.Lock()
			masters[node.Options().Addr] = true
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(masters) < 2 {
		t.Errorf("keys spread over %d master(s), want several", len(masters))
	}
}

// TestRedisRestart: Stop takes the server down like a crash, Start brings it back on the same
// address, and clients reconnect on their own.
func TestRedisRestart(t *testing.T) {
	r, stop := Redis()
	defer stop()
	addr := r.Addr(t)
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	r.Stop(t) // stopping a stopped server is fine
	if client.Ping(ctx).Err() == nil {
		t.Fatal("Redis answers after Stop")
	}
	r.Start(t)
	r.Start(t) // starting a running server is fine
	if got := r.Addr(t); got != addr {
		t.Fatalf("restarted on %s, want %s", got, addr)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if n, err := client.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS after restart = %d, %v; want an empty server", n, err)
	}
}

// TestStop: a stopped server no longer answers, its files are gone, and stopping twice is fine.
func TestStop(t *testing.T) {
	if os.Getenv("LLMGATE_TEST_DATABASE_URL") != "" || os.Getenv("LLMGATE_TEST_REDIS_ADDR") != "" {
		t.Skip("servers come from the environment")
	}
	p, stopPG := Postgres()
	r, stopRedis := Redis()
	dsn, addr := p.DSN(t), r.Addr(t)
	dirs := []string{p.root, r.nodes.dirs[0]}
	stopPG()
	stopRedis()
	stopPG()
	stopRedis()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Close(ctx)
		t.Error("PostgreSQL still answers after stop")
	}
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	if client.Ping(ctx).Err() == nil {
		t.Error("Redis still answers after stop")
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists after stop (stat: %v)", d, err)
		}
	}
}

// TestPostgresRestart: Stop takes the server down, Start brings it back on the same address with
// its data, and a pool reconnects on its own.
func TestPostgresRestart(t *testing.T) {
	p, stop := Postgres()
	t.Cleanup(stop) // after NewDatabase's cleanup, which needs the server
	dsn := p.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	p.Stop(t)
	p.Stop(t) // stopping a stopped server is fine
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("an open connection still works after Stop")
	}
	conn.Close(ctx)
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	if c, err := pgx.Connect(short, dsn); err == nil {
		c.Close(ctx)
		t.Fatal("PostgreSQL accepts connections after Stop")
	}
	cancelShort()
	p.Start(t)
	p.Start(t) // starting a running server is fine
	before, _ := url.Parse(dsn)
	if after, _ := url.Parse(p.DSN(t)); after.Host != before.Host {
		t.Fatalf("restarted on %s, want %s", after.Host, before.Host)
	}
	conn, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect after Start: %v", err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != 42 {
		t.Fatalf("row after restart = %d, %v; want 42: data must survive Stop/Start", v, err)
	}
}
