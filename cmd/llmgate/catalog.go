package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/store"
)

// The catalog: providers and models created through the admin API live in the store and are
// merged with the config file's whenever the routing table is built (at start, at a file reload,
// when an override or the catalog changes). The file wins a name both use: the API's entry is left
// out (and shown as shadowed). An API provider that no longer builds (its credential does not open
// with the configured keys, the outbound policy now refuses its address) is left out with its
// models, logged, rather than failing the table: the file's part always applies. A change made
// on one replica is applied there at once and reaches the others through the change bus
// (changes.Catalog), as deployment overrides do.

// catalogTimeout bounds reading the catalog from the store.
const catalogTimeout = 2 * time.Second

// catalog is the providers and models stored through the admin API, as last read.
type catalog struct {
	entries   []store.CatalogEntry // as read, to tell whether anything changed
	providers []ProviderConfig     // credentials opened
	models    []providers.ModelConfig
}

// readCatalog reads the catalog's entries from the store.
func readCatalog(ctx context.Context, st store.Store) ([]store.CatalogEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	entries, err := st.CatalogEntries(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return entries, nil
}

// decodeCatalog turns stored entries into config entries, opening credentials with keys. An
// entry that cannot be read is left out and logged (by name, never with its credential).
func decodeCatalog(entries []store.CatalogEntry, keys *secrets.Keyring, log *slog.Logger) catalog {
	cat := catalog{entries: entries}
	for _, e := range entries {
		switch e.Kind {
		case store.CatalogProvider:
			spec, key, err := admin.OpenProvider(e, keys)
			if err != nil {
				log.Error("catalog provider unreadable, or its credential does not open with the configured secret keys; provider left out",
					"provider", e.Name, "err", err)
				continue
			}
			cat.providers = append(cat.providers, providerConfigOf(e.Name, spec, key))
		case store.CatalogModel:
			m, err := admin.DecodeModel(e)
			if err != nil {
				log.Error("catalog model unreadable; left out", "model", e.Name, "err", err)
				continue
			}
			cat.models = append(cat.models, m.Config(e.Name))
		}
	}
	return cat
}

// sameEntries reports whether two reads of the catalog are equal.
func sameEntries(a, b []store.CatalogEntry) bool {
	return slices.EqualFunc(a, b, func(x, y store.CatalogEntry) bool {
		return x.Kind == y.Kind && x.Name == y.Name && x.Secret == y.Secret && bytes.Equal(x.Spec, y.Spec) &&
			x.UpdatedAt.Equal(y.UpdatedAt)
	})
}

// providerConfigOf is a provider of the admin API as the config file would have it.
func providerConfigOf(name string, s admin.ProviderSpec, apiKey string) ProviderConfig {
	pc := ProviderConfig{Config: providers.Config{Name: name, Type: s.Type, BaseURL: s.BaseURL, APIKey: apiKey},
		MaxIdleConnsPerHost: s.MaxIdleConnsPerHost, DialTimeout: time.Duration(s.DialTimeout),
		ResponseHeaderTimeout: time.Duration(s.ResponseHeaderTimeout), Headers: s.Headers, APIVersion: s.APIVersion,
		AllowPrivateNetwork: s.AllowPrivateNetwork}
	if s.Anthropic != nil {
		pc.Anthropic = *s.Anthropic
	}
	if s.Bedrock != nil {
		pc.Bedrock = *s.Bedrock
	}
	if s.Vertex != nil {
		pc.Vertex = *s.Vertex
	}
	return pc
}

// providerSpecOf describes a provider of the config file in the admin API's shape (with the
// section of its type when the file sets one; the admin API shows its secrets only as
// fingerprints).
func providerSpecOf(pc ProviderConfig) admin.ProviderSpec {
	s := admin.ProviderSpec{Type: pc.Type, BaseURL: pc.BaseURL, APIVersion: pc.APIVersion, Headers: pc.Headers,
		MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost, DialTimeout: admin.Duration(pc.DialTimeout),
		ResponseHeaderTimeout: admin.Duration(pc.ResponseHeaderTimeout), AllowPrivateNetwork: pc.AllowPrivateNetwork}
	switch {
	case pc.Type == "anthropic" && !reflect.ValueOf(pc.Anthropic).IsZero():
		s.Anthropic = &pc.Anthropic
	case pc.Type == "bedrock" && !reflect.ValueOf(pc.Bedrock).IsZero():
		s.Bedrock = &pc.Bedrock
	case pc.Type == "vertex" && !reflect.ValueOf(pc.Vertex).IsZero():
		s.Vertex = &pc.Vertex
	}
	return s
}

// table is a routing table and the providers behind it.
type table struct {
	router  *providers.Router
	provs   map[string]providers.Provider
	configs map[string]ProviderConfig
	built   map[string]providers.Provider // made for this table: closed when it is not used
}

// buildTable builds the routing table of cfg's file sections merged with the catalog, with the
// overrides. Providers whose settings equal prev's are reused with their connection pools unless
// reuse is false (the outbound policy changed).
func buildTable(cfg Config, cat catalog, ovs map[string]store.DeploymentOverride, prev table, reuse bool, log *slog.Logger) (table, error) {
	allow, err := cfg.Outbound.Prefixes()
	if err != nil {
		return table{}, err
	}
	t := table{provs: map[string]providers.Provider{}, configs: map[string]ProviderConfig{}, built: map[string]providers.Provider{}}
	kept := func(pc ProviderConfig) bool {
		if p, ok := prev.provs[pc.Name]; ok && reuse && reflect.DeepEqual(prev.configs[pc.Name], pc) {
			t.provs[pc.Name], t.configs[pc.Name] = p, pc
			return true
		}
		return false
	}
	var fresh []ProviderConfig
	for _, pc := range cfg.Providers {
		if !kept(pc) {
			fresh = append(fresh, pc)
		}
	}
	built, err := buildProviders(fresh, cfg.Outbound)
	if err != nil {
		return table{}, err
	}
	for _, pc := range fresh {
		t.provs[pc.Name], t.configs[pc.Name], t.built[pc.Name] = built[pc.Name], pc, built[pc.Name]
	}
	for _, pc := range cat.providers {
		if slices.ContainsFunc(cfg.Providers, func(f ProviderConfig) bool { return f.Name == pc.Name }) {
			log.Warn("catalog provider shadowed by the config file's of the same name; the file's is used", "provider", pc.Name)
			continue
		}
		if kept(pc) {
			continue
		}
		if err := validateProviders([]ProviderConfig{pc}, allow); err != nil {
			log.Error("catalog provider left out", "provider", pc.Name, "err", err)
			continue
		}
		b, err := buildProviders([]ProviderConfig{pc}, cfg.Outbound)
		if err != nil {
			log.Error("catalog provider left out", "provider", pc.Name, "err", err)
			continue
		}
		t.provs[pc.Name], t.configs[pc.Name], t.built[pc.Name] = b[pc.Name], pc, b[pc.Name]
	}
	models := slices.Clone(cfg.Models)
	for _, m := range cat.models {
		if slices.ContainsFunc(cfg.Models, func(f providers.ModelConfig) bool { return f.Name == m.Name }) {
			log.Warn("catalog model shadowed by the config file's of the same name; the file's is used", "model", m.Name)
			continue
		}
		// Its fallbacks are checked against the whole table below.
		if _, err := providers.NewRouter([]providers.ModelConfig{m.KeepFallbacks(none)}, cfg.Routing, t.provs, nil); err != nil {
			log.Error("catalog model left out", "model", m.Name, "err", err)
			continue
		}
		models = append(models, m)
	}
	// A fallback of an API model that names no model of the table (deleted, left out) is
	// dropped, logged: the rest of the model still serves.
	for i := len(cfg.Models); i < len(models); i++ {
		m := models[i]
		has := func(name string) bool {
			return name != m.Name && slices.ContainsFunc(models, func(o providers.ModelConfig) bool { return o.Name == name })
		}
		for _, f := range m.FallbackNames() {
			if !has(f) {
				log.Error("catalog model's fallback names no model; dropped", "model", m.Name, "fallback", f)
			}
		}
		models[i] = m.KeepFallbacks(has)
	}
	if t.router, err = providers.NewRouter(models, cfg.Routing, t.provs, routingOverrides(ovs)); err != nil {
		closeIdle(t.built)
		return table{}, err
	}
	return t, nil
}

// current is the table in use, as buildTable's prev (reloadMu held).
func (a *app) current() table { return table{provs: a.providers, configs: a.provConfigs} }

// swap puts a table in use and closes the idle connections of the providers it retires
// (reloadMu held). Requests in flight keep the table and connections they started with.
func (a *app) swap(t table) {
	a.gateway.SetRouter(t.router)
	retired := map[string]providers.Provider{}
	for name, p := range a.providers {
		if t.provs[name] != p {
			retired[name] = p
		}
	}
	a.providers, a.provConfigs = t.provs, t.configs
	closeIdle(retired)
}

// refreshCatalog reads the catalog from the store and, when it changed, rebuilds the routing table
// with it. The change bus calls it for every change announced, and without Redis every second.
func (a *app) refreshCatalog(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	entries, err := readCatalog(ctx, a.store)
	if err != nil {
		return err
	}
	if sameEntries(a.catalog.entries, entries) {
		return nil
	}
	cat := decodeCatalog(entries, a.keys, a.log)
	t, err := buildTable(a.cfg, cat, a.overrides, a.current(), true, a.log)
	if err != nil {
		return err
	}
	a.swap(t)
	a.catalog = cat
	a.log.Info("catalog applied", "providers", len(cat.providers), "models", len(cat.models))
	return nil
}

// catalogControl is the admin API's handle on the catalog of the running gateway.
type catalogControl struct {
	a       *app
	changes *changes.Bus
}

var _ admin.CatalogControl = catalogControl{}

// FileCatalog returns the providers and models of the config file in use.
func (c catalogControl) FileCatalog() admin.FileCatalog {
	c.a.reloadMu.Lock()
	defer c.a.reloadMu.Unlock()
	out := admin.FileCatalog{Models: slices.Clone(c.a.cfg.Models)}
	for _, pc := range c.a.cfg.Providers {
		out.Providers = append(out.Providers, admin.FileProvider{Name: pc.Name, Spec: providerSpecOf(pc), APIKey: pc.APIKey})
	}
	return out
}

// CheckProvider validates a provider as the config file's are: validateProviders, then building
// its client (which checks the URL), without connecting anywhere.
func (c catalogControl) CheckProvider(name string, spec admin.ProviderSpec, apiKey string) error {
	c.a.reloadMu.Lock()
	ob := c.a.cfg.Outbound
	c.a.reloadMu.Unlock()
	allow, err := ob.Prefixes()
	if err != nil {
		return err
	}
	pc := providerConfigOf(name, spec, apiKey)
	if err := validateProviders([]ProviderConfig{pc}, allow); err != nil {
		return fieldError(err, "providers[0] ("+name+").", "providers[0].")
	}
	built, err := buildProviders([]ProviderConfig{pc}, ob)
	if err != nil {
		return fieldError(err, "providers[0] ("+name+").")
	}
	closeIdle(built)
	return nil
}

// CheckModel validates a model as the config file's are (the router's checks), against the
// providers in use.
func (c catalogControl) CheckModel(m providers.ModelConfig) error {
	c.a.reloadMu.Lock()
	defer c.a.reloadMu.Unlock()
	if _, err := providers.NewRouter([]providers.ModelConfig{m.KeepFallbacks(none)}, c.a.cfg.Routing, c.a.providers, nil); err != nil {
		return fieldError(err, "models[0] ("+m.Name+").", "models[0].")
	}
	// Fallbacks name models of the routing table in use (the file's or the API's), not itself.
	for _, f := range m.FallbackNames() {
		if f == m.Name || !c.a.gateway.Router().Has(f) {
			return &admin.FieldError{Field: "fallbacks", Message: "names " + f + ", which is not another model of the routing table"}
		}
	}
	return nil
}

// none keeps no fallback: a model checked on its own, whose fallbacks are checked apart.
func none(string) bool { return false }

// CatalogChanged applies the stored catalog here and announces the change to the others.
func (c catalogControl) CatalogChanged(ctx context.Context) error {
	return c.changes.Announce(ctx, changes.Catalog, "")
}

// fieldError turns a config check's error about the one entry checked ("providers[0] (x).base_url:
// …") into the field it names, as the admin API reports it.
func fieldError(err error, prefixes ...string) error {
	msg := err.Error()
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			if field, m, ok := strings.Cut(rest, ": "); ok {
				return &admin.FieldError{Field: field, Message: m}
			}
		}
	}
	return &admin.FieldError{Message: msg}
}

// newKeyring builds the secret keyring of the `secrets` section; nil when no key is configured.
// Errors name the field, never the key.
func newKeyring(c SecretsConfig, read func(string) ([]byte, error)) (*secrets.Keyring, error) {
	if c.Key != "" && c.KeyFile != "" {
		return nil, fmt.Errorf("secrets: set key (LLMGATE_SECRET_KEY) or key_file, not both")
	}
	parse := func(field, v string) ([]byte, error) {
		k, err := secrets.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("secrets.%s: %w", field, err)
		}
		return k, nil
	}
	file := func(field, path string) ([]byte, error) {
		raw, err := read(path)
		if err != nil {
			return nil, fmt.Errorf("secrets.%s: %w", field, err)
		}
		return parse(field, string(raw))
	}
	var cur []byte
	var err error
	switch {
	case c.Key != "":
		cur, err = parse("key", c.Key)
	case c.KeyFile != "":
		cur, err = file("key_file", c.KeyFile)
	}
	if err != nil {
		return nil, err
	}
	var prev [][]byte
	for i, k := range c.PreviousKeys {
		b, err := parse(fmt.Sprintf("previous_keys[%d]", i), k)
		if err != nil {
			return nil, err
		}
		prev = append(prev, b)
	}
	for i, f := range c.PreviousKeyFiles {
		b, err := file(fmt.Sprintf("previous_key_files[%d]", i), f)
		if err != nil {
			return nil, err
		}
		prev = append(prev, b)
	}
	if cur == nil {
		if len(prev) > 0 {
			return nil, fmt.Errorf("secrets.previous_keys: set the current key too (secrets.key, key_file or LLMGATE_SECRET_KEY)")
		}
		return nil, nil
	}
	return secrets.New(cur, prev...)
}
