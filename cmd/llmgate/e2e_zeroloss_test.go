package main

// End-to-end tests of the usage ledger's "lose nothing" promises (docs/operations.md: "Ledger pipeline" and
// "What survives kill -9"): a PostgreSQL outage under load, SIGTERM with a full queue, and
// kill -9 with a spool. Each compares the set of X-Request-Id values the gateway answered with a
// 200 to the request_ids in usage_records, read straight from PostgreSQL: equal sets, exact
// counts, no duplicates.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/testsvc"
	"github.com/llmgate/llmgate/providers/mock"
)

// outagePostgres is a PostgreSQL server of the calling test's own, for tests that stop it. The
// package's shared server (pg) must not be stopped: every test using it at that moment would see
// the outage (none of this package's tests call t.Parallel today, but nothing keeps one from
// doing so), and its stop/start would sit in their timings. A server of our own costs a copy of
// the initdb template and a start, about a second.
func outagePostgres(t *testing.T) (*testsvc.PostgresServer, string) {
	t.Helper()
	srv, stop := testsvc.Postgres()
	t.Cleanup(stop)
	dsn := srv.NewDatabase(t) // starts the server (skip, or fail under CI=true, when it cannot)
	// Cleanups run last-registered first: bring the server back (if a failure left it stopped)
	// before the database is dropped and the server shut down.
	t.Cleanup(func() { srv.Start(t) })
	return srv, dsn
}

// chatBody is request i of a load: a mix of stream and non-stream answers, prompt sizes and
// max_tokens limits, so every request has its own token counts and cost.
func chatBody(i int) []byte {
	limit := ""
	if i%5 == 0 {
		limit = fmt.Sprintf(`,"max_tokens":%d`, 3+i%13) // the mock answers with fewer tokens
	}
	return fmt.Appendf(nil, `{"model":"gpt-test","stream":%t%s,"messages":[{"role":"user","content":%q}]}`,
		i%4 == 0, limit, strings.Repeat("w ", 1+i%7))
}

// chatLoad sends chat requests over HTTP to a gateway's public listener and keeps the
// X-Request-Id of every 200 answered in full.
type chatLoad struct {
	client *http.Client
	url    string // public root, http://host:port
	key    string

	mu     sync.Mutex
	ids    []string
	failed []string // what went wrong with the others
	done   atomic.Int64
}

// send sends request i and reads the whole answer.
func (l *chatLoad) send(ctx context.Context, i int) {
	defer l.done.Add(1)
	fail := func(format string, args ...any) {
		l.mu.Lock()
		l.failed = append(l.failed, fmt.Sprintf("request %d: ", i)+fmt.Sprintf(format, args...))
		l.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/v1/chat/completions", bytes.NewReader(chatBody(i)))
	if err != nil {
		fail("%v", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+l.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		fail("%v", err)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		fail("reading the answer: %v", err)
	case resp.StatusCode != http.StatusOK:
		fail("HTTP %d: %.200s", resp.StatusCode, body)
	case i%4 == 0 && !bytes.HasSuffix(bytes.TrimSpace(body), []byte("data: [DONE]")):
		fail("stream cut short: %.200s", body)
	case resp.Header.Get("X-Request-Id") == "":
		fail("no X-Request-Id")
	default:
		l.mu.Lock()
		l.ids = append(l.ids, resp.Header.Get("X-Request-Id"))
		l.mu.Unlock()
	}
}

// run sends requests from to to-1 with c workers, each request after gate(i) returns (nil: at
// once), and returns when all are answered or ctx ends.
func (l *chatLoad) run(ctx context.Context, from, to, c int, gate func(i int)) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if gate != nil {
					gate(i)
				}
				l.send(ctx, i)
			}
		}()
	}
	wg.Wait()
}

// check fails the test when a request did not get a complete 200, and returns the ids.
func (l *chatLoad) check(t *testing.T, want int) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 {
		t.Fatalf("%d of %d requests did not get a complete 200 (the request path must not depend on the ledger); first ones:\n%s",
			len(l.failed), want, strings.Join(l.failed[:min(10, len(l.failed))], "\n"))
	}
	if len(l.ids) != want {
		t.Fatalf("%d request ids for %d requests", len(l.ids), want)
	}
	return slices.Clone(l.ids)
}

// usageMetrics scrapes the recorder's counters from a gateway's admin listener: every
// llmgate_usage_* sample, and gov_dead_letter_total.
func usageMetrics(t *testing.T, client *http.Client, adminURL string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s/metrics: %v", adminURL, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s/metrics: HTTP %d %v", adminURL, resp.StatusCode, err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "llmgate_usage_") && !strings.HasPrefix(line, "gov_dead_letter_total ") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if f, err := strconv.ParseFloat(val, 64); ok && err == nil {
			m[name] = f
		}
	}
	for _, name := range []string{"llmgate_usage_spooled_total", "llmgate_usage_replayed_total", "llmgate_usage_dropped_total",
		"llmgate_usage_written_total", "llmgate_usage_queue_depth", "llmgate_usage_spool_bytes", "gov_dead_letter_total"} {
		if _, ok := m[name]; !ok {
			t.Fatalf("%s/metrics has no %s", adminURL, name)
		}
	}
	return m
}

// ledgerDB reads the ledger straight from PostgreSQL, so the checks do not depend on the store
// code under test. Each query has a connection of its own: the tests stop the server.
type ledgerDB struct {
	t   *testing.T
	dsn string
}

func openLedger(t *testing.T, dsn string) *ledgerDB { return &ledgerDB{t: t, dsn: dsn} }

// queryRow runs one query and scans its row, failing the test on an error.
func (l *ledgerDB) queryRow(sql string, args []any, dest ...any) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		l.t.Fatalf("connect to the ledger: %v", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		l.t.Fatalf("%s: %v", sql, err)
	}
}

// rows counts a key's usage rows.
func (l *ledgerDB) rows(keyID string) int {
	l.t.Helper()
	var n int
	l.queryRow(`SELECT count(*) FROM usage_records WHERE key_id = $1`, []any{keyID}, &n)
	return n
}

// waitRows waits until a key has n usage rows, failing if it has more.
func (l *ledgerDB) waitRows(keyID string, n int, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := l.rows(keyID)
		switch {
		case got == n:
			return
		case got > n:
			l.t.Fatalf("%d usage rows, want %d", got, n)
		case time.Now().After(deadline):
			l.t.Fatalf("%d usage rows after waiting %v, want %d", got, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requestIDs returns the request_id of every usage row of a key, duplicates included.
func (l *ledgerDB) requestIDs(keyID string) []string {
	l.t.Helper()
	var ids []string
	l.queryRow(`SELECT COALESCE(array_agg(request_id), '{}') FROM usage_records WHERE key_id = $1`, []any{keyID}, &ids)
	return ids
}

// sameIDs fails the test unless the ledger's request ids are exactly the ids the gateway
// answered with: the same set, each once.
func sameIDs(t *testing.T, answered, ledger []string) {
	t.Helper()
	want := make(map[string]bool, len(answered))
	for _, id := range answered {
		if want[id] {
			t.Fatalf("the gateway answered two requests with X-Request-Id %s", id)
		}
		want[id] = true
	}
	seen := make(map[string]int, len(ledger))
	var dup, extra []string
	for _, id := range ledger {
		seen[id]++
		switch {
		case seen[id] == 2:
			dup = append(dup, id)
		case !want[id] && seen[id] == 1:
			extra = append(extra, id)
		}
	}
	var missing []string
	for _, id := range answered {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing)+len(dup)+len(extra) > 0 {
		t.Fatalf("ledger vs answers: %d rows for %d answered requests; %d missing (e.g. %v), %d duplicated (e.g. %v), %d unknown (e.g. %v)",
			len(ledger), len(answered), len(missing), missing[:min(3, len(missing))], len(dup), dup[:min(3, len(dup))],
			len(extra), extra[:min(3, len(extra))])
	}
}

// ledgerTotals are a key's sums over its usage rows, or over its billing_record rollups.
type ledgerTotals struct {
	Requests, Prompt, Completion int64
	Cost                         string // pico-USD, a decimal integer (NUMERIC in the rollups)
}

func (l *ledgerDB) usageTotals(keyID string) ledgerTotals {
	l.t.Helper()
	var s ledgerTotals
	var costed int64
	l.queryRow(`SELECT count(*), COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0),
		COALESCE(sum(cost_pico_usd), 0)::text, count(cost_pico_usd) FROM usage_records WHERE key_id = $1`, []any{keyID},
		&s.Requests, &s.Prompt, &s.Completion, &s.Cost, &costed)
	if costed != s.Requests {
		l.t.Errorf("%d of %d usage rows have no cost", s.Requests-costed, s.Requests)
	}
	return s
}

func (l *ledgerDB) rollupTotals(keyID string) ledgerTotals {
	l.t.Helper()
	var s ledgerTotals
	l.queryRow(`SELECT COALESCE(sum(requests), 0), COALESCE(sum(prompt_tokens), 0),
		COALESCE(sum(completion_tokens), 0), COALESCE(sum(cost_pico_usd), 0)::text FROM billing_record WHERE key_id = $1`,
		[]any{keyID}, &s.Requests, &s.Prompt, &s.Completion, &s.Cost)
	return s
}

// tokenTally wraps the mock upstream and adds up the usage the mock itself reported in every
// answer it completed: the reference the ledger is checked against, independent of the
// gateway's records.
type tokenTally struct {
	h                                    *mock.Handler
	answers, prompt, completion, noUsage atomic.Int64
}

// teeWriter keeps a copy of what the mock writes. Unwrap lets the mock's ResponseController
// reach the real writer to flush each SSE event.
type teeWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (tt *tokenTally) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &teeWriter{ResponseWriter: w}
	tt.h.ServeHTTP(tw, r)
	if r.URL.Path != "/v1/chat/completions" || tw.status != http.StatusOK {
		return
	}
	tt.answers.Add(1)
	usage := gjson.GetBytes(tw.buf.Bytes(), "usage")
	if strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		usage = gjson.Result{}
		for _, line := range bytes.Split(tw.buf.Bytes(), []byte("\n")) {
			if u := gjson.GetBytes(bytes.TrimPrefix(line, []byte("data: ")), "usage"); u.IsObject() {
				usage = u
			}
		}
	}
	if !usage.IsObject() {
		tt.noUsage.Add(1)
		return
	}
	tt.prompt.Add(usage.Get("prompt_tokens").Int())
	tt.completion.Add(usage.Get("completion_tokens").Int())
}

// TestZeroLossThroughDatabaseOutage: 20,000 requests, with PostgreSQL stopped for 30 s in the
// middle of them. Every request gets its 200 (nothing on the request path waits for the
// database), the records of the outage go to the spool and are replayed, and the ledger ends
// with exactly one row per answered request id. Its cost total, its billing_record rollups and
// the credit charges all equal what the mock's own token counts times the price come to.
func TestZeroLossThroughDatabaseOutage(t *testing.T) {
	const (
		total   = 20_000
		before  = 6_000 // sent before the outage, as fast as they go
		during  = 8_000 // sent while PostgreSQL is down, spread over the outage
		workers = 32
		outage  = 30 * time.Second
		// the price of up-model, in micro-USD per 1M tokens; a record's cost in pico-USD is
		// tokens × these, exactly
		inMicro, outMicro = 2_500_000, 10_000_000
		topUpPico         = 100 * 1_000_000_000_000 // 100 USD
	)
	srv, dsn := outagePostgres(t)
	tally := &tokenTally{h: mock.NewHandler(mock.Options{RequireKey: upstreamKey})}
	upSrv := httptest.NewServer(tally)
	t.Cleanup(upSrv.Close)
	e := newEnv(t, func(c *Config) {
		c.DatabaseURL = dsn
		c.Providers[0].BaseURL = upSrv.URL + "/v1" // "up", behind gpt-test
		// The key cache keeps its short test TTL: while PostgreSQL is down, the gateway serves
		// the keys it knew as valid (stale), so requests keep passing through the outage.
		c.Usage.BatchSize = 500
		c.Usage.ReplayInterval = 250 * time.Millisecond
	})
	db := openLedger(t, dsn)
	k := e.newKey(createKeyBody{Name: "zero-loss", UserID: "zero-loss-user"})
	if s := e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"2.50","output_per_million":"10"}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing/up-model: %d", s)
	}
	waitFor(t, 5*time.Second, "the price to apply", func() bool {
		p, ok := e.app.gateway.Prices().Lookup("up-model")
		return ok && p.InputPerM == inMicro && p.OutputPerM == outMicro
	})
	if s := e.adminSend(http.MethodPost, "/admin/credits/user/zero-loss-user/topup", `{"amount_usd":"100"}`, nil); s != 200 {
		t.Fatalf("top-up: %d", s)
	}

	load := &chatLoad{client: e.http, url: e.app.publicURL, key: k.Key}
	down, up := make(chan struct{}), make(chan struct{})
	var downAt time.Time // written before down is closed
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // a failed assertion must not leave workers behind
	gate := func(i int) {
		switch {
		case i < before:
		case i < before+during: // spread over the outage, with a few seconds to spare
			select {
			case <-down:
			case <-ctx.Done():
				return
			}
			at := downAt.Add(time.Duration(i-before) * (outage - 3*time.Second) / during)
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
			}
		default:
			select {
			case <-up:
			case <-ctx.Done():
			}
		}
	}
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); load.run(ctx, 0, total, workers, gate) }()

	waitFor(t, 3*time.Minute, "the requests before the outage", func() bool { return load.done.Load() >= before })
	waitFor(t, time.Minute, "3000 records written", func() bool {
		return usageMetrics(t, e.http, e.app.adminURL)["llmgate_usage_written_total"] >= 3000
	})
	t.Logf("%d requests in %v before the outage; %d rows written", before, time.Since(start).Round(time.Millisecond), db.rows(k.ID))
	srv.Stop(t)
	downAt = time.Now()
	close(down)
	time.Sleep(outage)
	answeredDuringOutage := load.done.Load() - before
	srv.Start(t)
	close(up)
	t.Logf("PostgreSQL was down for %v; %d requests answered meanwhile", time.Since(downAt).Round(time.Millisecond), answeredDuringOutage)
	wg.Wait()
	t.Logf("%d requests in %v", total, time.Since(start).Round(time.Millisecond))
	ids := load.check(t, total)
	if answeredDuringOutage < during/2 {
		t.Errorf("only %d requests were answered while PostgreSQL was down; the test meant to send %d then", answeredDuringOutage, during)
	}

	// the spool replays; then the ledger holds exactly the answered requests
	replayStart := time.Now()
	db.waitRows(k.ID, total, 2*time.Minute)
	var m map[string]float64
	waitFor(t, 30*time.Second, "an empty queue and spool", func() bool {
		m = usageMetrics(t, e.http, e.app.adminURL)
		return m["llmgate_usage_queue_depth"] == 0 && m["llmgate_usage_spool_bytes"] == 0
	})
	t.Logf("ledger complete %v after the load; metrics %v", time.Since(replayStart).Round(time.Millisecond), m)
	sameIDs(t, ids, db.requestIDs(k.ID))
	if m["llmgate_usage_spooled_total"] == 0 || m["llmgate_usage_replayed_total"] == 0 {
		t.Errorf("spooled %v, replayed %v: the outage path was not exercised", m["llmgate_usage_spooled_total"], m["llmgate_usage_replayed_total"])
	}
	if m["llmgate_usage_dropped_total"] != 0 || m["gov_dead_letter_total"] != 0 {
		t.Errorf("dropped %v, dead-lettered %v; want none", m["llmgate_usage_dropped_total"], m["gov_dead_letter_total"])
	}

	// money: the mock's own token counts × the price, exactly
	st := tally.h.Stats()
	if st.Requests != total || st.Completed != total || tally.answers.Load() != total || tally.noUsage.Load() != 0 {
		t.Fatalf("upstream: %+v, %d answers tallied, %d without usage; want %d requests, each completed once",
			st, tally.answers.Load(), tally.noUsage.Load(), total)
	}
	prompt, completion := tally.prompt.Load(), tally.completion.Load()
	want := ledgerTotals{Requests: total, Prompt: prompt, Completion: completion,
		Cost: strconv.FormatInt(prompt*inMicro+completion*outMicro, 10)}
	if got := db.usageTotals(k.ID); got != want {
		t.Errorf("usage_records totals %+v, want %+v (from the mock's own counts)", got, want)
	}
	if got := db.rollupTotals(k.ID); got != want {
		t.Errorf("billing_record totals %+v, want %+v", got, want)
	}
	var balance string
	var charges int
	db.queryRow(`SELECT a.balance_pico_usd::text,
		(SELECT count(*) FROM credit_ledger l WHERE l.account_id = a.id AND l.kind = 'charge')
		FROM credit_accounts a WHERE a.subject_type = 'user' AND a.subject_id = 'zero-loss-user'`, nil, &balance, &charges)
	wantBalance := new(big.Int).Sub(big.NewInt(topUpPico), big.NewInt(prompt*inMicro+completion*outMicro))
	if balance != wantBalance.String() || charges != total {
		t.Errorf("credit account: balance %s pico-USD after %d charges, want %s after %d", balance, charges, wantBalance, total)
	}
}

// tableLock holds an ACCESS EXCLUSIVE lock on usage_records in an open transaction: every write
// to the table waits, as with a database that has stopped answering, while the server stays up.
type tableLock struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

func lockUsageTable(t *testing.T, dsn string) *tableLock {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, `LOCK TABLE usage_records IN ACCESS EXCLUSIVE MODE`)
	}
	if err != nil {
		conn.Close(ctx)
		t.Fatalf("lock usage_records: %v", err)
	}
	l := &tableLock{conn: conn, tx: tx}
	t.Cleanup(l.release)
	return l
}

// release ends the transaction (and the lock); calling it again does nothing.
func (l *tableLock) release() {
	if l.conn == nil {
		return
	}
	_ = l.tx.Rollback(context.Background())
	_ = l.conn.Close(context.Background())
	l.conn = nil
}

// TestSigtermWritesTheQueuedRecords: a gateway process receives SIGTERM while its usage writer is
// stuck in the database, its queue is full and the overflow has gone to the spool. It must keep
// draining until the database answers, write every queued record, exit 0 within its shutdown
// deadline, and the next start must replay the spool: every request id answered with a 200 is
// then in usage_records exactly once.
func TestSigtermWritesTheQueuedRecords(t *testing.T) {
	const (
		warm      = 100  // written normally first
		total     = 1100 // the other 1000 are sent while the writer is stuck
		queueSize = 200
		// the flush after the drain is bounded by shutdown.flush_timeout (30 s); the margin is for a loaded machine
		exitWithin = 45 * time.Second
	)
	dsn := pg.NewDatabase(t) // the shared server: this test locks a table of its own database, it never stops the server
	e := newEnv(t, func(c *Config) {
		c.DatabaseURL = dsn
		c.Usage.QueueSize = queueSize
		c.Usage.BatchSize = 100
		c.Usage.ReplayInterval = 200 * time.Millisecond
		c.Usage.WriteTimeout = 2 * time.Minute // the stuck write waits for the lock, it does not time out
	})
	db := openLedger(t, dsn)
	k := e.newKey(createKeyBody{Name: "sigterm"})
	dataDir := t.TempDir()
	p1 := e.serveProcessIn(t, dataDir)
	load := &chatLoad{client: e.http, url: p1.url, key: k.Key}
	load.run(context.Background(), 0, warm, 8, nil)
	db.waitRows(k.ID, warm, 30*time.Second)

	lock := lockUsageTable(t, dsn)
	load.run(context.Background(), warm, total, 16, nil)
	ids := load.check(t, total)
	// Every answered request was recorded before its handler returned (settlement is the
	// handler's defer), so the queue holds all it will hold by now.
	var m map[string]float64
	waitFor(t, 10*time.Second, "a full usage queue", func() bool {
		m = usageMetrics(t, e.http, p1.adminURL)
		return m["llmgate_usage_queue_depth"] == queueSize
	})
	spooled := int(m["llmgate_usage_spooled_total"])
	if m["llmgate_usage_written_total"] != warm || spooled == 0 || m["llmgate_usage_dropped_total"] != 0 {
		t.Fatalf("before SIGTERM: %v; want %d written, an overflow spooled, none dropped", m, warm)
	}
	t.Logf("before SIGTERM: queue %v, spooled %d, written %v", m["llmgate_usage_queue_depth"], spooled, m["llmgate_usage_written_total"])

	// Connections the client opened but never used would hold up the listeners' shutdown for
	// 5 s (net/http waits that long for a first request), while the spool replayer still runs
	// and could take the spool to the database first: close them, so the spool is left for the
	// restart.
	e.http.CloseIdleConnections()
	if err := p1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	select {
	case <-p1.exited():
		t.Fatalf("the gateway exited %v after SIGTERM, before the database took the queued records (%v):\n%s",
			time.Since(sigterm), p1.waitErr, p1.log)
	case <-time.After(1500 * time.Millisecond): // still draining, as it must
	}
	lock.release()
	select {
	case <-p1.exited():
	case <-time.After(exitWithin):
		t.Fatalf("the gateway did not exit within %v of SIGTERM:\n%s", exitWithin, p1.log)
	}
	if p1.waitErr != nil {
		t.Fatalf("the gateway exited with %v after SIGTERM:\n%s", p1.waitErr, p1.log)
	}
	t.Logf("exited 0, %v after SIGTERM", time.Since(sigterm).Round(time.Millisecond))
	// What was not spooled was in memory (the queue, the stuck batch): the drain wrote it. Some
	// of the spool may be written too: the replayer runs until the recorder closes, after the
	// listeners, so it may get to the database first once the lock is gone.
	exitRows := db.rows(k.ID)
	if exitRows < total-spooled {
		t.Fatalf("after the exit: %d usage rows, want at least %d (all but the %d spooled): the queue was not written on SIGTERM\n%s",
			exitRows, total-spooled, spooled, p1.log)
	}

	p2 := e.serveProcessIn(t, dataDir) // replays the spool first
	db.waitRows(k.ID, total, 30*time.Second)
	sameIDs(t, ids, db.requestIDs(k.ID))
	waitFor(t, 10*time.Second, "the spool to empty", func() bool {
		m = usageMetrics(t, e.http, p2.adminURL)
		return m["llmgate_usage_spool_bytes"] == 0
	})
	// the records missing at the exit came from the spool (a segment is replayed whole, so
	// more may be replayed: the database deduplicates them)
	if r := int(m["llmgate_usage_replayed_total"]); r < total-exitRows || r > spooled || m["llmgate_usage_dropped_total"] != 0 || m["gov_dead_letter_total"] != 0 {
		t.Errorf("after the restart: %v; want %d to %d replayed, none dropped or dead-lettered", m, total-exitRows, spooled)
	}
	t.Logf("%d rows at the exit, %v replayed at the restart", exitRows, m["llmgate_usage_replayed_total"])
}

// TestKill9KeepsSpooledAndCommittedRecords checks what docs/operations.md promises of kill -9: records
// the database committed and records written to the spool survive, and replays are
// deduplicated. A gateway process writes some records normally, then spools every record while
// PostgreSQL is down, and is killed with SIGKILL. Once PostgreSQL is back, the next start on the
// same data_dir replays the spool: exactly the answered request ids are in usage_records, once
// each. Then the same segments are replayed a second time (as after a crash between a replay's
// commit and the segment's deletion): nothing changes, in the rows or in the rollups.
func TestKill9KeepsSpooledAndCommittedRecords(t *testing.T) {
	const committed, spooled = 200, 1000
	srv, dsn := outagePostgres(t)
	e := newEnv(t, func(c *Config) {
		c.DatabaseURL = dsn
		c.Usage.BatchSize = 100
		c.Usage.ReplayInterval = 200 * time.Millisecond
	})
	db := openLedger(t, dsn)
	k := e.newKey(createKeyBody{Name: "kill9"})
	// a price (read by the process at its start), so that the rollup checks below cover costs
	if s := e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"0.15","output_per_million":"0.60"}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing/up-model: %d", s)
	}
	dataDir := t.TempDir()
	spoolDir := filepath.Join(dataDir, "spool")
	p1 := e.serveProcessIn(t, dataDir)
	load := &chatLoad{client: e.http, url: p1.url, key: k.Key}
	load.run(context.Background(), 0, committed, 8, nil)
	db.waitRows(k.ID, committed, 30*time.Second)

	srv.Stop(t)
	load.run(context.Background(), committed, committed+spooled, 16, nil)
	ids := load.check(t, committed+spooled)
	var m map[string]float64
	waitFor(t, 30*time.Second, fmt.Sprintf("%d records spooled", spooled), func() bool {
		m = usageMetrics(t, e.http, p1.adminURL)
		return m["llmgate_usage_spooled_total"] >= spooled && m["llmgate_usage_queue_depth"] == 0
	})
	if m["llmgate_usage_spooled_total"] != spooled || m["llmgate_usage_written_total"] != committed || m["llmgate_usage_dropped_total"] != 0 {
		t.Fatalf("before the kill: %v; want %d spooled, %d written, none dropped", m, spooled, committed)
	}
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.exited()
	t.Logf("killed with %d records committed and %v spooled", committed, m["llmgate_usage_spooled_total"])
	segs, err := filepath.Glob(filepath.Join(spoolDir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no spool segment left by the killed gateway in %s (%v)", spoolDir, err)
	}
	backup := t.TempDir()
	for _, s := range segs {
		copyFile(t, s, filepath.Join(backup, filepath.Base(s)))
	}

	srv.Start(t)
	if n := db.rows(k.ID); n != committed {
		t.Fatalf("after the kill: %d usage rows, want the %d committed before it", n, committed)
	}
	p2 := e.serveProcessIn(t, dataDir)
	db.waitRows(k.ID, committed+spooled, 30*time.Second)
	sameIDs(t, ids, db.requestIDs(k.ID))
	waitFor(t, 10*time.Second, "the spool to empty", func() bool {
		m = usageMetrics(t, e.http, p2.adminURL)
		return m["llmgate_usage_spool_bytes"] == 0
	})
	if m["llmgate_usage_replayed_total"] != spooled || m["gov_dead_letter_total"] != 0 || m["llmgate_usage_dropped_total"] != 0 {
		t.Errorf("after the restart: %v; want %d replayed, none dead-lettered or dropped", m, spooled)
	}
	t.Logf("restarted: %v replayed", m["llmgate_usage_replayed_total"])
	usage, rollup := db.usageTotals(k.ID), db.rollupTotals(k.ID)
	if usage.Requests != committed+spooled || rollup != usage {
		t.Errorf("rollups %+v do not add up to the usage rows %+v", rollup, usage)
	}

	// The same segments once more: the database must deduplicate the replay.
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p2.exited()
	if p2.waitErr != nil {
		t.Fatalf("SIGTERM: %v\n%s", p2.waitErr, p2.log)
	}
	for _, s := range segs {
		copyFile(t, filepath.Join(backup, filepath.Base(s)), s)
	}
	p3 := e.serveProcessIn(t, dataDir)
	waitFor(t, 30*time.Second, "the second replay", func() bool {
		m = usageMetrics(t, e.http, p3.adminURL)
		return m["llmgate_usage_replayed_total"] >= spooled && m["llmgate_usage_spool_bytes"] == 0
	})
	t.Logf("the same %d records replayed again", spooled)
	sameIDs(t, ids, db.requestIDs(k.ID))
	if u, r := db.usageTotals(k.ID), db.rollupTotals(k.ID); u != usage || r != rollup {
		t.Errorf("after replaying the same records again: usage %+v, rollups %+v; want them unchanged (%+v, %+v)", u, r, usage, rollup)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}
