package main

import (
	"context"
	"crypto/sha256"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/llmgate/llmgate/providers"
)

// Hot reload: the `providers`, `models`, `routing` and `outbound` sections of the config file apply without a
// restart, on SIGHUP or when the file changes (checked every config_poll_interval). A reload
// builds a new routing table and swaps it in; requests in flight finish on the table they started
// with. Deployment overrides (admin changes) are read from the store again and merged over the
// file; when the store does not answer, the last ones read still apply. The providers and models
// of the admin API's catalog (catalog.go) are merged in as last read. Providers whose settings
// did not change are kept, with their connection pools; retired ones close their idle
// connections. A file that does not load or validate changes nothing (the error is logged and
// counted). Other sections need a restart: a change there is logged and ignored.

// watchConfig reloads on SIGHUP and on changes of the file at path, until ctx ends. adjust
// applies to each loaded config what the command line set (flags), as at start.
func (a *app) watchConfig(ctx context.Context, path string, adjust func(*Config)) {
	every := configPoll(a.cfg)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	last := fileSum(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last = fileSum(path)
			a.reloadLogged(path, adjust, "SIGHUP")
		case <-tick:
			if sum := fileSum(path); sum != last {
				last = sum
				a.reloadLogged(path, adjust, "file changed")
			}
		}
	}
}

func fileSum(path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}

func (a *app) reloadLogged(path string, adjust func(*Config), why string) {
	if err := a.reload(path, adjust); err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.log.Error("config reload failed; keeping the running configuration", "trigger", why, "err", err)
		return
	}
	a.reloads.WithLabelValues("ok").Inc()
	a.log.Info("config reloaded", "trigger", why, "models", a.gateway.Router().Models())
}

// reload applies the file's providers, models and routing.
func (a *app) reload(path string, adjust func(*Config)) error {
	cfg, err := loadConfig(path, os.LookupEnv)
	if err != nil {
		return err
	}
	if adjust != nil {
		adjust(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if fixed := restartOnly(a.cfg, cfg); len(fixed) > 0 {
		a.log.Warn("config sections changed that apply only at restart; ignored until then", "sections", fixed)
	}
	overrides, err := loadOverrides(context.Background(), a.store)
	if err != nil { // the store is away: the file still applies, with the overrides last read
		a.log.Warn("deployment overrides could not be read; keeping the last ones", "err", err)
		overrides = a.overrides
	}
	// Providers whose settings did not change are kept, unless the outbound policy changed (then
	// every provider gets the new one).
	t, err := buildTable(cfg, a.catalog, overrides, a.current(), reflect.DeepEqual(a.cfg.Outbound, cfg.Outbound), a.log)
	if err != nil {
		return err
	}
	a.swap(t)
	a.overrides = overrides
	mockBefore := mockModels(a.cfg)
	a.cfg.Providers, a.cfg.Models, a.cfg.Routing, a.cfg.Outbound = cfg.Providers, cfg.Models, cfg.Routing, cfg.Outbound
	a.logMock(mockBefore)
	return nil
}

func closeIdle(ps map[string]providers.Provider) {
	for _, p := range ps {
		if ic, ok := p.(providers.IdleCloser); ok {
			ic.CloseIdleConnections()
		}
	}
}

// restartOnly names the sections that differ between two configs and do not reload.
func restartOnly(running, next Config) []string {
	var out []string
	for name, pair := range map[string][2]any{
		"listen": {running.Listen, next.Listen}, "admin_listen": {running.AdminListen, next.AdminListen},
		"data_dir": {running.DataDir, next.DataDir}, "database_url": {running.DatabaseURL, next.DatabaseURL},
		"redis_url": {running.RedisURL, next.RedisURL}, "admin_token": {running.AdminToken, next.AdminToken},
		"pricing_file": {running.PricingFile, next.PricingFile}, "log": {running.Log, next.Log},
		"quota": {running.Quota, next.Quota}, "gateway": {running.Gateway, next.Gateway}, "usage": {running.Usage, next.Usage},
		"config_poll_interval": {running.ConfigPollInterval, next.ConfigPollInterval},
		"shutdown":             {running.Shutdown, next.Shutdown}, "tracing": {running.Tracing, next.Tracing},
		"secrets": {running.Secrets, next.Secrets}, "gc_min_headroom_bytes": {running.GCMinHeadroom, next.GCMinHeadroom},
		"gc_percent": {running.GCPercent, next.GCPercent},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	return out
}

// configPoll is how often the file is checked for changes (config_poll_interval, default 1s;
// negative: only SIGHUP reloads).
func configPoll(c Config) time.Duration {
	switch {
	case c.ConfigPollInterval < 0:
		return 0
	case c.ConfigPollInterval == 0:
		return time.Second
	}
	return c.ConfigPollInterval
}
