package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDirs are searched in order for initdb and postgres; PATH comes after them.
var pgBinDirs = []string{"/usr/lib/postgresql/15/bin"}

// PostgresServer is a PostgreSQL server for one test package: started on first use, with trust
// authentication on 127.0.0.1 and durability switched off for speed.
type PostgresServer struct {
	once sync.Once
	mu   sync.Mutex
	dsn  string
	err  error
	proc *process // nil while stopped
	root string
	// bin, argv and cred start the server again exactly as it was (Start after Stop).
	bin  string
	argv []string
	cred *syscall.Credential
}

// Postgres returns the package's PostgreSQL server (LLMGATE_TEST_DATABASE_URL when set) and the
// function that stops it and removes its files; call that after m.Run.
func Postgres() (*PostgresServer, func()) {
	p := &PostgresServer{}
	return p, p.stop
}

// DSN returns the URL of the server's "postgres" database, starting the server on first use. It
// skips or fails t when the server cannot run (see the package doc).
func (p *PostgresServer) DSN(t testing.TB) string {
	t.Helper()
	p.once.Do(p.start)
	require(t, p.err)
	return p.dsn
}

// NewDatabase creates an empty database for t alone and returns its URL; the database is dropped
// when t ends. Tests get isolation for the price of a CREATE DATABASE (tens of milliseconds).
func (p *PostgresServer) NewDatabase(t testing.TB) string {
	t.Helper()
	admin := p.DSN(t)
	var b [8]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	if err := pgExec(admin, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("testsvc: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := pgExec(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testsvc: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func pgExec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn pointing at database name instead.
func withDatabase(dsn, name string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " dbname=" + name, nil // key=value form: a later key wins
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("testsvc: parse database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (p *PostgresServer) start() {
	if dsn := os.Getenv("LLMGATE_TEST_DATABASE_URL"); dsn != "" {
		p.dsn = dsn
		return
	}
	bin, err := findPGBin()
	if err != nil {
		p.err = err
		return
	}
	cred, err := postgresCredential()
	if err != nil {
		p.err = err
		return
	}
	template, err := pgTemplate(bin, cred)
	if err != nil {
		p.err = err
		return
	}
	p.err = retry(func() error { return p.launch(bin, template, cred) })
	if p.err != nil {
		// The shared template may be what is broken (a temp cleaner ate part of it): the next run
		// makes a fresh one.
		os.RemoveAll(template)
	}
}

// launch copies the template data directory and starts postgres on a fresh port.
func (p *PostgresServer) launch(bin, template string, cred *syscall.Credential) error {
	root, err := tempDir("pg")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		os.RemoveAll(root)
		return err
	}
	data, sock := filepath.Join(root, "data"), filepath.Join(root, "sock")
	if out, err := exec.Command("cp", "-a", template, data).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("testsvc: copy postgres template: %w: %s", err, out))
	}
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fail(fmt.Errorf("testsvc: %w", err))
	}
	if err := chownAll(cred, root, sock); err != nil {
		return fail(err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return fail(err)
	}
	argv := []string{
		"-D", data, "-p", strconv.Itoa(ports[0]), "-h", "127.0.0.1", "-k", sock,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "max_wal_size=1GB",
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", ports[0])
	proc, err := runPostgres(filepath.Join(bin, "postgres"), argv, filepath.Join(root, "postgres.log"), cred, dsn)
	if err != nil {
		return fail(err)
	}
	p.mu.Lock()
	p.proc, p.root, p.dsn = proc, root, dsn
	p.bin, p.argv, p.cred = filepath.Join(bin, "postgres"), argv, cred
	p.mu.Unlock()
	return nil
}

// runPostgres starts postgres and waits until it accepts connections on dsn.
func runPostgres(bin string, argv []string, logPath string, cred *syscall.Credential, dsn string) (*process, error) {
	proc, err := startProcess(bin, argv, logPath, cred)
	if err != nil {
		return nil, err
	}
	err = proc.waitReady(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		proc.stop(syscall.SIGQUIT) // waitReady kills it on a timeout; an early exit is already done
		return nil, err
	}
	return proc, nil
}

// Stop takes the server down, keeping its port and data directory so Start can bring it back:
// for tests of database outages. It is PostgreSQL's fast shutdown (SIGINT): every session is cut
// at once (clients see their connections close or a 57P01 admin_shutdown error), transactions in
// flight roll back, and every transaction already acknowledged as committed survives. Not the
// immediate shutdown (SIGQUIT) or a SIGKILL: the server runs with synchronous_commit=off for
// speed, so a crash-like stop could lose the last commits it acknowledged, which a real server
// would keep and which outage tests count on. Every test sharing the server sees the outage, so
// such tests use a server of their own. A server from LLMGATE_TEST_DATABASE_URL cannot be
// stopped: the test is skipped.
func (p *PostgresServer) Stop(t testing.TB) {
	t.Helper()
	p.DSN(t)
	if os.Getenv("LLMGATE_TEST_DATABASE_URL") != "" {
		t.Skip("testsvc: PostgreSQL comes from LLMGATE_TEST_DATABASE_URL and cannot be stopped")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.stop(syscall.SIGINT)
		p.proc = nil
	}
}

// Start restarts a stopped server on the same port with the same settings and data directory (the
// databases and rows committed before Stop are all there), and waits until it accepts
// connections. Starting a running server does nothing.
func (p *PostgresServer) Start(t testing.TB) {
	t.Helper()
	p.DSN(t)
	if os.Getenv("LLMGATE_TEST_DATABASE_URL") != "" {
		t.Skip("testsvc: PostgreSQL comes from LLMGATE_TEST_DATABASE_URL and cannot be restarted")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		return
	}
	if p.root == "" {
		t.Fatal("testsvc: PostgreSQL was shut down for good (its stop function ran)")
	}
	proc, err := runPostgres(p.bin, p.argv, filepath.Join(p.root, "postgres.log"), p.cred, p.dsn)
	if err != nil {
		t.Fatalf("testsvc: restart postgres: %v", err)
	}
	p.proc = proc
}

// stop shuts the server down immediately (SIGQUIT: its data is thrown away) and removes its files.
func (p *PostgresServer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.stop(syscall.SIGQUIT)
		p.proc = nil
	}
	if p.root != "" {
		os.RemoveAll(p.root)
		p.root = ""
	}
}

func findPGBin() (string, error) {
	for _, dir := range pgBinDirs {
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	path, err := exec.LookPath("postgres")
	if err != nil {
		return "", unavailable("testsvc: postgres not found in %s or on PATH", strings.Join(pgBinDirs, ", "))
	}
	return filepath.Dir(path), nil
}

// postgresCredential returns the postgres user's credential when running as root, which
// PostgreSQL refuses to run as, and nil (run as ourselves) otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, unavailable("testsvc: running as root and there is no postgres user to run PostgreSQL as: %v", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("testsvc: postgres user has a non-numeric uid/gid %s/%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func chownAll(cred *syscall.Credential, paths ...string) error {
	if cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("testsvc: %w", err)
		}
	}
	return nil
}

// pgTemplate returns a data directory made by initdb, shared by every test package and run on this
// machine: copying it takes a fraction of the time initdb does. It is made once per PostgreSQL
// version and owner, under a file lock so packages tested in parallel do not race to make it.
func pgTemplate(bin string, cred *syscall.Credential) (string, error) {
	out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("testsvc: postgres --version: %w", err)
	}
	// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": the third field is the version.
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return "", fmt.Errorf("testsvc: unexpected postgres --version output %q", out)
	}
	version := fields[2]
	owner := os.Geteuid()
	if cred != nil {
		owner = int(cred.Uid)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("%spgtemplate-%s-u%d", tempPrefix, version, owner))

	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("testsvc: template lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("testsvc: template lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return dir, nil
	}

	// initdb writes into a directory of our own, renamed into place only when complete.
	work, err := tempDir("pgtemplate")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := chownAll(cred, work); err != nil {
		return "", err
	}
	data := filepath.Join(work, "data")
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = work // the postgres user may not be able to enter our working directory
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testsvc: initdb: %w: %s", err, out)
	}
	os.RemoveAll(dir) // an incomplete leftover, if any
	if err := os.Rename(data, dir); err != nil {
		return "", fmt.Errorf("testsvc: install postgres template: %w", err)
	}
	return dir, nil
}
