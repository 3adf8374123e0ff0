// Command llmgate is the gateway binary: `serve` (the default) runs it from a config file,
// `demo` runs it with the embedded default and prints a ready-to-use key, `keys`, `users`,
// `tenants`, `tokens`, `pricing`, `quota`, `credits`, `deployments`, `providers`, `models`,
// `experiments`, `audit`, `billing` and `audit-log` call the admin API, `bench` measures it against the direct path, and `version`
// says which build it is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmgate/llmgate/internal/adminclient"
	"github.com/llmgate/llmgate/internal/gctune"
)

const usageText = `llmgate — an OpenAI-compatible LLM gateway

Usage:
  llmgate [serve] [--config FILE] [--listen ADDR] [--admin-listen ADDR]
  llmgate demo    [--config FILE] [--listen ADDR] [--admin-listen ADDR]
  llmgate keys    create|list|get|update|rotate|revoke …  (admin API client; see llmgate keys -h)
  llmgate users   create|list|get|update|delete …
  llmgate tenants create|list|get|update|delete …
  llmgate tokens  create|list|get|revoke …                (admin tokens)
  llmgate pricing list|get|set …
  llmgate quota   list|get|set|delete|usage|clear-session …  (quota policies, usage, sessions)
  llmgate credits balance|topup|adjust|history …
  llmgate deployments list|get|enable|disable|weight|reset|test …
  llmgate providers create|list|get|update|delete|reencrypt …  (providers of the file and the API)
  llmgate models  create|list|get|update|delete …         (public models of the file and the API)
  llmgate experiments create|list|get|update|start|pause|stop|results …  (A/B experiments)
  llmgate audit   search|trace …                          (usage records)
  llmgate billing summary|export …
  llmgate audit-log [list] [filters]                      (changes made through the admin API)
  llmgate bench   [flags]                                 (see llmgate bench -h)
  llmgate --version                                       (also: llmgate version)

Environment: LLMGATE_CONFIG, LLMGATE_LISTEN, LLMGATE_ADMIN_LISTEN, LLMGATE_DATA_DIR,
LLMGATE_DATABASE_URL, LLMGATE_REDIS_URL, LLMGATE_ADMIN_TOKEN, LLMGATE_ADMIN_URL.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		cmd, args = "help", args[1:]
	} else if len(args) > 0 && args[0] == "--version" {
		cmd, args = "version", args[1:]
	} else if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCmd(args, stdout, stderr, false)
	case "demo":
		err = serveCmd(args, stdout, stderr, true)
	case "version":
		fmt.Fprint(stdout, versionText())
	case "keys", "users", "tenants", "tokens", "pricing", "quota", "credits", "deployments", "audit", "billing", "audit-log",
		"providers", "models", "experiments":
		err = adminclient.Run(cmd, args, stdout, stderr)
	case "bench":
		err = benchCmd(args, stdout, stderr)
	case "bench-proxy":
		err = benchProxyCmd(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
	default:
		fmt.Fprintf(stderr, "llmgate: unknown command %q\n\n%s", cmd, usageText)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "llmgate:", err)
		return 1
	}
	return 0
}

// serveCmd runs the gateway until SIGINT/SIGTERM. In demo mode it also generates an admin token
// when none is set, creates a key and prints how to use it.
func serveCmd(args []string, stdout, stderr io.Writer, demo bool) error {
	name := "serve"
	if demo {
		name = "demo"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("LLMGATE_CONFIG"), "config file (YAML)")
	listenHelp := "public listener address (overrides config and env; default " + defaultListen + ")"
	if demo {
		listenHelp = "public listener address (overrides config and env; default " + demoListen + ")"
	}
	listen := fs.String("listen", "", listenHelp)
	adminListen := fs.String("admin-listen", "", "admin listener address (overrides config and env)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, os.LookupEnv)
	if err != nil {
		return err
	}
	demoToken := ""
	if demo && cfg.AdminToken == "" {
		demoToken = adminclient.NewToken()
	}
	adjust := commandLine{demo: demo, listen: *listen, adminListen: *adminListen, demoToken: demoToken}.apply
	adjust(&cfg)
	cfg.stdout, cfg.stderr = stdout, stderr // the access log's "stdout" and "stderr"
	if demo {
		// Nothing routes to the demo through a load balancer: stop on the first Ctrl-C.
		cfg.Shutdown.PreStopDelay = 0
	}
	log := newLogger(stderr, cfg.Log.Level, demo)
	// The process's collector, once per process (tests start many apps in one).
	defer gctune.Start(cfg.GCMinHeadroom, cfg.GCPercent).Stop()
	// The first SIGINT or SIGTERM ends ctx and starts the drain; a second one ends hurry, which
	// cuts the drain short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hurry, hurried := context.WithCancel(context.Background())
	defer hurried()
	go func() {
		for _, end := range []context.CancelFunc{stop, hurried} {
			select {
			case <-sigs:
				end()
			case <-hurry.Done(): // serveCmd returns
				return
			}
		}
	}()
	a, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if !demo { // demo is meant to run on the mock, and its printed text says so
		a.warnOfMock()
	}
	if demo {
		if err := printDemo(ctx, stdout, a); err != nil {
			_ = a.shutdown(context.Background())
			return err
		}
	}
	watched := make(chan struct{})
	wctx, stopWatch := context.WithCancel(ctx)
	go func() {
		defer close(watched)
		if *cfgPath != "" {
			a.watchConfig(wctx, *cfgPath, adjust)
		}
	}()
	select {
	case <-ctx.Done():
	case err = <-a.served:
		log.Error("listener failed", "err", err)
	}
	stopWatch()
	<-watched
	log.Info("shutting down")
	drain := a.drain
	if err != nil {
		drain = a.shutdown // the public listener has failed: no pre-stop delay
	}
	if serr := drain(hurry); serr != nil {
		return serr
	}
	return err
}

// commandLine is what the command line sets over a loaded config, at start and at every reload.
type commandLine struct {
	demo                bool
	listen, adminListen string // the flags; empty when not given
	demoToken           string // the admin token demo made up, for a config without one
}

func (l commandLine) apply(c *Config) {
	switch {
	case l.listen != "":
		c.Listen = l.listen
	case l.demo && c.listenDefaulted:
		c.Listen = demoListen
	}
	if l.adminListen != "" {
		c.AdminListen = l.adminListen
	}
	if c.AdminToken == "" {
		c.AdminToken = l.demoToken
	}
}

func newLogger(w io.Writer, level string, demo bool) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
		if demo {
			l = slog.LevelWarn // keep the demo's printed instructions readable
		}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
