package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/store"
)

// Providers and models over the admin API (the catalog). The config file and the store both
// define them; the running gateway merges the two, and the file wins: an API entry may not take
// a name the file uses, the file's entries are read-only here, and should a later file add a
// name the API already has, the API's entry is shadowed (listed, marked, not used) until one of
// them goes. Every answer says where an entry comes from ("origin": "file" or "api").
//
// Providers and models are validated by the running gateway with the code that validates the
// config file (CatalogControl), stored, audited, then applied here and announced to the other
// replicas, as deployment overrides are. A provider's credential is sealed with the secret key
// before it is stored and shown only as a fingerprint.

// CatalogControl is the running gateway's side of /admin/providers and /admin/models; nil
// disables them.
type CatalogControl interface {
	// FileCatalog returns what the config file in use defines.
	FileCatalog() FileCatalog
	// CheckProvider validates a provider as the config file's are validated (type, base URL,
	// the outbound address policy, building its client); a *FieldError names the field.
	CheckProvider(name string, spec ProviderSpec, apiKey string) error
	// CheckModel validates a model as the config file's are, against the providers in use; a
	// *FieldError names the field.
	CheckModel(m providers.ModelConfig) error
	// CatalogChanged applies the stored catalog here at once and has every other replica apply
	// it shortly.
	CatalogChanged(ctx context.Context) error
}

// Origins of catalog entries.
const (
	originFile = "file"
	originAPI  = "api"
)

// keylessTypes are the provider types that run without an api_key: local servers, the mock,
// bedrock (which signs with its section's AWS keys or the gateway's own AWS credentials) and
// vertex (which takes its tokens with its section's service account key or the gateway's own
// Google credentials); every other type needs an api_key when created through the API.
var keylessTypes = map[string]bool{"mock": true, "vllm": true, "ollama": true, "bedrock": true, "vertex": true}

func (s *Server) routeCatalog(a *gin.RouterGroup) {
	s.handle(a, http.MethodPost, "/providers", global(areaProviders), s.createProvider)
	s.handle(a, http.MethodGet, "/providers", read(areaProviders), s.listProviders)
	s.handle(a, http.MethodGet, "/providers/:name", read(areaProviders), s.getProvider)
	s.handle(a, http.MethodPatch, "/providers/:name", global(areaProviders), s.patchProvider)
	s.handle(a, http.MethodDelete, "/providers/:name", global(areaProviders), s.deleteProvider)
	s.handle(a, http.MethodPost, "/models", global(areaProviders), s.createModel)
	s.handle(a, http.MethodGet, "/models", read(areaProviders), s.listModels)
	// Catch-all: model names may hold "/".
	s.handle(a, http.MethodGet, "/models/*model", read(areaProviders), s.getModel)
	s.handle(a, http.MethodPatch, "/models/*model", global(areaProviders), s.patchModel)
	s.handle(a, http.MethodDelete, "/models/*model", global(areaProviders), s.deleteModel)
	s.handle(a, http.MethodPost, "/secrets/reencrypt", global(areaProviders), s.reencrypt)
}

// providerView is a provider as the admin API shows it: never its credential, only the
// credential's fingerprint and, for an API entry, the id of the key that sealed it.
type providerView struct {
	Name string `json:"name"`
	ProviderSpec
	Origin            string  `json:"origin"`
	APIKeyFingerprint *string `json:"api_key_fingerprint"`
	// SecretFingerprints are the fingerprints of the section's secret values, by field
	// ("bedrock.secret_access_key").
	SecretFingerprints map[string]string `json:"secret_fingerprints,omitempty"`
	KeyID              string            `json:"key_id,omitempty"`
	Shadowed           bool              `json:"shadowed"`
	CreatedAt          *time.Time        `json:"created_at,omitempty"`
	UpdatedAt          *time.Time        `json:"updated_at,omitempty"`
	UpdatedBy          string            `json:"updated_by,omitempty"`
}

// modelView is a public model as the admin API shows it.
type modelView struct {
	Name string `json:"name"`
	ModelSpec
	Origin    string     `json:"origin"`
	Shadowed  bool       `json:"shadowed"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

func fingerprintOf(key string) *string {
	if key == "" {
		return nil
	}
	f := secrets.Fingerprint(key)
	return &f
}

func fileProviderView(p FileProvider) providerView {
	spec, fps := p.Spec.redacted()
	spec.Headers = shownHeaders(spec.Headers)
	return providerView{Name: p.Name, ProviderSpec: spec, Origin: originFile, APIKeyFingerprint: fingerprintOf(p.APIKey), SecretFingerprints: fps}
}

// apiProviderView describes a stored provider; its fingerprint is kept in the spec's row beside
// the sealed credential (storedProvider), so showing it needs no key.
func apiProviderView(e store.CatalogEntry, sp storedProvider, shadowed bool) providerView {
	v := providerView{Name: e.Name, ProviderSpec: sp.ProviderSpec, Origin: originAPI, Shadowed: shadowed,
		CreatedAt: &e.CreatedAt, UpdatedAt: &e.UpdatedAt, UpdatedBy: e.UpdatedBy, SecretFingerprints: sp.SecretFingerprints}
	if sp.Fingerprint != "" {
		f := sp.Fingerprint
		v.APIKeyFingerprint = &f
	}
	if ids := sealedBy(e); len(ids) > 0 {
		v.KeyID = ids[0]
	}
	return v
}

func apiModelView(e store.CatalogEntry, spec ModelSpec, shadowed bool) modelView {
	return modelView{Name: e.Name, ModelSpec: spec, Origin: originAPI, Shadowed: shadowed,
		CreatedAt: &e.CreatedAt, UpdatedAt: &e.UpdatedAt, UpdatedBy: e.UpdatedBy}
}

// storedProvider is a provider entry's spec as stored: the settings without the sections'
// secret values, those values sealed, and the fingerprints of every secret (the api_key itself
// is the entry's sealed Secret, which older entries have alone).
type storedProvider struct {
	ProviderSpec
	Fingerprint string `json:"api_key_fingerprint,omitempty"`
	// Sealed holds the sections' secret values sealed, by field ("bedrock.secret_access_key").
	Sealed             map[string]string `json:"sealed,omitempty"`
	SecretFingerprints map[string]string `json:"secret_fingerprints,omitempty"`
}

// DecodeModel reads a stored model entry's settings.
func DecodeModel(e store.CatalogEntry) (ModelSpec, error) {
	var m ModelSpec
	err := json.Unmarshal(e.Spec, &m)
	return m, err
}

// SecretContext binds a provider's sealed credential to its name: a sealed value copied to
// another provider's row does not open.
func SecretContext(provider string) string { return "provider:" + provider }

// catalogEntries reads the stored entries of one kind.
func (s *Server) catalogEntries(ctx context.Context, kind store.CatalogKind) ([]store.CatalogEntry, error) {
	all, err := s.d.Store.CatalogEntries(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, e := range all {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out, nil
}

// catalogEntry finds one stored entry (ok false: none).
func (s *Server) catalogEntry(ctx context.Context, kind store.CatalogKind, name string) (store.CatalogEntry, bool, error) {
	list, err := s.catalogEntries(ctx, kind)
	if err != nil {
		return store.CatalogEntry{}, false, err
	}
	for _, e := range list {
		if e.Name == name {
			return e, true, nil
		}
	}
	return store.CatalogEntry{}, false, nil
}

func (s *Server) fileProvider(name string) (FileProvider, bool) {
	for _, p := range s.d.Catalog.FileCatalog().Providers {
		if p.Name == name {
			return p, true
		}
	}
	return FileProvider{}, false
}

func (s *Server) fileModel(name string) (providers.ModelConfig, bool) {
	for _, m := range s.d.Catalog.FileCatalog().Models {
		if m.Name == name {
			return m, true
		}
	}
	return providers.ModelConfig{}, false
}

func definedInFile(c *gin.Context, what, name string) {
	fail(c, http.StatusConflict, api.TypeInvalidRequest, "defined_in_file", "name",
		"The config file defines "+what+" "+strconv.Quote(name)+": change it there (the file wins over the admin API).")
}

// checked answers a check's error: a 400 naming the field, or a 500.
func (s *Server) checked(c *gin.Context, prefix string, err error) bool {
	if err == nil {
		return true
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		if fe.Field == "" {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "", fe.Message)
			return false
		}
		invalid(c, prefix+fe.Field, fe.Message)
		return false
	}
	s.internal(c, err)
	return false
}

// catalogApplied applies a stored change everywhere, then answers with answer. The change is
// stored and audited already: when applying fails the answer says so, and a retry applies it.
func (s *Server) catalogApplied(c *gin.Context, status int, answer any) {
	if err := s.d.Catalog.CatalogChanged(c.Request.Context()); err != nil {
		s.d.Log.Error("catalog change stored but not applied", "err", err)
		fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "change_not_applied", "",
			"The change is stored but could not be applied to the running gateways yet; it applies with the next change or reload.")
		return
	}
	if answer == nil {
		c.Status(status)
		return
	}
	c.JSON(status, answer)
}

// providerBody is the body of POST /admin/providers.
type providerBody struct {
	Name   string  `json:"name"`
	APIKey *string `json:"api_key"`
	ProviderSpec
}

// providerPatch is the body of PATCH /admin/providers/{name}: named fields replace, null clears
// (api_key null removes the credential).
type providerPatch struct {
	Type                  *string                     `json:"type"`
	BaseURL               optional[string]            `json:"base_url"`
	APIKey                optional[string]            `json:"api_key"`
	APIVersion            optional[string]            `json:"api_version"`
	Headers               optional[map[string]string] `json:"headers"`
	MaxIdleConnsPerHost   optional[int]               `json:"max_idle_conns_per_host"`
	DialTimeout           optional[Duration]          `json:"dial_timeout"`
	ResponseHeaderTimeout optional[Duration]          `json:"response_header_timeout"`
	AllowPrivateNetwork   optional[bool]              `json:"allow_private_network"`
	// The type sections merge field by field (typeSection.merge); null removes one.
	Anthropic optional[json.RawMessage] `json:"anthropic"`
	Bedrock   optional[json.RawMessage] `json:"bedrock"`
	Vertex    optional[json.RawMessage] `json:"vertex"`
}

func setOpt[T any](o optional[T], dst *T) {
	if !o.Set {
		return
	}
	var zero T
	*dst = zero
	if o.Val != nil {
		*dst = *o.Val
	}
}

// checkProviderBody checks what only the API adds to the file's rules: a credential where the
// type needs one, the key to seal it, and no credential hidden in a header.
func (s *Server) checkProviderBody(c *gin.Context, spec ProviderSpec, apiKey string) bool {
	for name, v := range spec.Headers {
		if sensitiveHeader(name) {
			invalid(c, "headers."+name, "looks like a credential: send it as api_key, which is stored sealed (headers are stored as they are).")
			return false
		}
		if !checkText(c, "headers."+name, name, 200, true) || !checkText(c, "headers."+name, v, 2000, false) {
			return false
		}
	}
	if apiKey == "" && !keylessTypes[spec.Type] && spec.Type != "" {
		invalid(c, "api_key", "required for type "+spec.Type+" (only mock, vllm, ollama, bedrock and vertex run without one).")
		return false
	}
	// A key file is a path on the server: the API takes the key itself (credentials_json), which
	// is stored sealed and reaches every replica, where a path would name a file that one machine
	// may have and another not, and would let an API caller make the gateway read any file it can.
	if spec.Vertex != nil && spec.Vertex.CredentialsFile != "" {
		invalid(c, "vertex.credentials_file", "a path on the server is not taken over the API: send the service account key itself as vertex.credentials_json, which is stored sealed.")
		return false
	}
	if !s.checked(c, "", checkSections(spec)) {
		return false
	}
	for _, f := range append([]secretField{{"api_key", &apiKey}}, spec.secretFields()...) {
		if !checkText(c, f.name, *f.val, 4000, false) {
			return false
		}
		if *f.val != "" && s.d.Secrets == nil {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "secret_key_required", f.name,
				f.name+": no secret key is configured (secrets.key, secrets.key_file or LLMGATE_SECRET_KEY), and a credential is never stored in the clear.")
			return false
		}
	}
	return true
}

// sealedEntry makes the store entry of a provider: its spec with the credentials' fingerprints
// and the sections' secrets sealed in place of their values, and the api_key sealed ("" when it
// has none).
func (s *Server) sealedEntry(name string, spec ProviderSpec, apiKey string) (store.CatalogEntry, error) {
	sp := storedProvider{}
	sp.ProviderSpec, sp.SecretFingerprints = spec.redacted()
	e := store.CatalogEntry{Kind: store.CatalogProvider, Name: name}
	if apiKey != "" {
		sealed, err := s.d.Secrets.Seal(apiKey, SecretContext(name))
		if err != nil {
			return e, err
		}
		e.Secret, sp.Fingerprint = sealed, secrets.Fingerprint(apiKey)
	}
	for _, f := range spec.secretFields() {
		if *f.val == "" {
			continue
		}
		sealed, err := s.d.Secrets.Seal(*f.val, sectionContext(name, f.name))
		if err != nil {
			return e, err
		}
		if sp.Sealed == nil {
			sp.Sealed = map[string]string{}
		}
		sp.Sealed[f.name] = sealed
	}
	raw, err := json.Marshal(sp)
	e.Spec = raw
	return e, err
}

func (s *Server) createProvider(c *gin.Context) {
	var b providerBody
	if !decode(c, &b) {
		return
	}
	if !checkID(c, "name", b.Name) {
		return
	}
	if _, ok := s.fileProvider(b.Name); ok {
		definedInFile(c, "provider", b.Name)
		return
	}
	key := ""
	if b.APIKey != nil {
		key = *b.APIKey
	}
	if !s.checkProviderBody(c, b.ProviderSpec, key) || !s.checked(c, "", s.d.Catalog.CheckProvider(b.Name, b.ProviderSpec, key)) {
		return
	}
	e, err := s.sealedEntry(b.Name, b.ProviderSpec, key)
	if err != nil {
		s.internal(c, err)
		return
	}
	e.CreatedAt, e.UpdatedBy = now(), who(c).Actor
	e.UpdatedAt = e.CreatedAt
	if err := s.d.Store.CreateCatalogEntry(c.Request.Context(), e); err != nil {
		if isConflict(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "provider_exists", "name", "A provider named "+strconv.Quote(b.Name)+" exists already.")
			return
		}
		s.internal(c, err)
		return
	}
	var sp storedProvider
	_ = json.Unmarshal(e.Spec, &sp)
	v := apiProviderView(e, sp, false)
	s.audit(c, "provider.create", b.Name, "", nil, v)
	s.catalogApplied(c, http.StatusCreated, v)
}

// providerViews lists the file's providers, then the API's.
func (s *Server) providerViews(ctx context.Context) ([]providerView, error) {
	entries, err := s.catalogEntries(ctx, store.CatalogProvider)
	if err != nil {
		return nil, err
	}
	file := s.d.Catalog.FileCatalog().Providers
	out := make([]providerView, 0, len(file)+len(entries))
	inFile := map[string]bool{}
	for _, p := range file {
		out = append(out, fileProviderView(p))
		inFile[p.Name] = true
	}
	for _, e := range entries {
		var sp storedProvider
		if err := json.Unmarshal(e.Spec, &sp); err != nil {
			return nil, err
		}
		out = append(out, apiProviderView(e, sp, inFile[e.Name]))
	}
	return out, nil
}

func (s *Server) listProviders(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	all, err := s.providerViews(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, window(all, limit, offset), limit, offset, func(v providerView) providerView { return v })
}

func (s *Server) getProvider(c *gin.Context) {
	name := c.Param("name")
	all, err := s.providerViews(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	for _, v := range all { // the file's first: the one in use when both have the name
		if v.Name == name {
			c.JSON(http.StatusOK, v)
			return
		}
	}
	notFound(c, "provider", "name")
}

// apiProvider finds a provider the API may change, answering itself when there is none.
func (s *Server) apiProvider(c *gin.Context) (store.CatalogEntry, storedProvider, bool) {
	name := c.Param("name")
	e, found, err := s.catalogEntry(c.Request.Context(), store.CatalogProvider, name)
	if err != nil {
		s.internal(c, err)
		return e, storedProvider{}, false
	}
	if _, inFile := s.fileProvider(name); inFile && !found {
		definedInFile(c, "provider", name)
		return e, storedProvider{}, false
	}
	if !found {
		notFound(c, "provider", "name")
		return e, storedProvider{}, false
	}
	var sp storedProvider
	if err := json.Unmarshal(e.Spec, &sp); err != nil {
		s.internal(c, err)
		return e, sp, false
	}
	return e, sp, true
}

func (s *Server) patchProvider(c *gin.Context) {
	cur, sp, ok := s.apiProvider(c)
	if !ok {
		return
	}
	var b providerPatch
	if !decode(c, &b) {
		return
	}
	// The stored secrets are opened to merge, check and seal them again; one that does not open
	// must be named anew (or removed) by this PATCH.
	spec, key, unreadable, err := openProvider(cur, s.d.Secrets)
	if err != nil {
		s.internal(c, err)
		return
	}
	named := map[string]bool{"api_key": b.APIKey.Set}
	for _, ts := range typeSections {
		o := ts.patched(&b)
		if !o.Set {
			continue
		}
		patch := json.RawMessage("null")
		if o.Val != nil {
			patch = *o.Val
		}
		if !mergeSection(c, ts, &spec, patch) {
			return
		}
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(patch, &keys)
		for _, f := range ts.secretNames {
			_, ok := keys[f]
			named[ts.name+"."+f] = o.Val == nil || ok
		}
	}
	for _, f := range unreadable {
		if !named[f] {
			s.d.Log.Error("stored provider credential does not open", "provider", cur.Name, "field", f)
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "credential_unreadable", f,
				f+": the stored credential does not open with the configured secret keys; send "+f+" again.")
			return
		}
	}
	if b.Type != nil {
		spec.Type = *b.Type
	}
	setOpt(b.BaseURL, &spec.BaseURL)
	setOpt(b.APIVersion, &spec.APIVersion)
	setOpt(b.Headers, &spec.Headers)
	setOpt(b.MaxIdleConnsPerHost, &spec.MaxIdleConnsPerHost)
	setOpt(b.DialTimeout, &spec.DialTimeout)
	setOpt(b.ResponseHeaderTimeout, &spec.ResponseHeaderTimeout)
	if b.AllowPrivateNetwork.Set {
		spec.AllowPrivateNetwork = b.AllowPrivateNetwork.Val
	}
	// The credential: kept unless named.
	if b.APIKey.Set {
		key = ""
		if b.APIKey.Val != nil {
			key = *b.APIKey.Val
		}
	}
	if !s.checkProviderBody(c, spec, key) || !s.checked(c, "", s.d.Catalog.CheckProvider(cur.Name, spec, key)) {
		return
	}
	e, err := s.sealedEntry(cur.Name, spec, key)
	if err != nil {
		s.internal(c, err)
		return
	}
	e.CreatedAt, e.UpdatedAt, e.UpdatedBy = cur.CreatedAt, now(), who(c).Actor
	if err := s.d.Store.UpdateCatalogEntry(c.Request.Context(), e); err != nil {
		if isNotFound(err) {
			notFound(c, "provider", "name")
			return
		}
		s.internal(c, err)
		return
	}
	var next storedProvider
	_ = json.Unmarshal(e.Spec, &next)
	_, shadowed := s.fileProvider(cur.Name)
	v := apiProviderView(e, next, shadowed)
	s.audit(c, "provider.update", cur.Name, "", apiProviderView(cur, sp, shadowed), v)
	s.catalogApplied(c, http.StatusOK, v)
}

// modelsUsing names the models (file's and API's) with a deployment on provider.
func (s *Server) modelsUsing(ctx context.Context, provider string) ([]string, error) {
	var out []string
	for _, m := range s.d.Catalog.FileCatalog().Models {
		for _, d := range m.Deployments {
			if d.Provider == provider {
				out = append(out, m.Name)
				break
			}
		}
	}
	entries, err := s.catalogEntries(ctx, store.CatalogModel)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		m, err := DecodeModel(e)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(m.Deployments, func(d DeploymentSpec) bool { return d.Provider == provider }) && !slices.Contains(out, e.Name) {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

func (s *Server) deleteProvider(c *gin.Context) {
	cur, sp, ok := s.apiProvider(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	_, shadowed := s.fileProvider(cur.Name)
	if !shadowed { // a shadowed entry is not what the models use
		users, err := s.modelsUsing(ctx, cur.Name)
		if err != nil {
			s.internal(c, err)
			return
		}
		if len(users) > 0 {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "provider_in_use", "name",
				"Provider "+strconv.Quote(cur.Name)+" has deployments in models "+strings.Join(users, ", ")+": change or delete those first.")
			return
		}
	}
	if err := s.d.Store.DeleteCatalogEntry(ctx, store.CatalogProvider, cur.Name); err != nil {
		if isNotFound(err) {
			notFound(c, "provider", "name")
			return
		}
		s.internal(c, err)
		return
	}
	s.audit(c, "provider.delete", cur.Name, "", apiProviderView(cur, sp, shadowed), nil)
	s.catalogApplied(c, http.StatusNoContent, nil)
}

// modelBody is the body of POST /admin/models.
type modelBody struct {
	Name string `json:"name"`
	ModelSpec
}

// modelPatch is the body of PATCH /admin/models/{name}: named fields replace (deployments as a
// whole list).
type modelPatch struct {
	Strategy        optional[string]  `json:"strategy"`
	TokenMultiplier optional[float64] `json:"token_multiplier"`
	Deployments     *[]DeploymentSpec `json:"deployments"`
	// The failure policy's fields: null clears one.
	Retry                  optional[*RetrySpec]              `json:"retry"`
	Fallbacks              optional[[]string]                `json:"fallbacks"`
	ContextWindowFallbacks optional[[]string]                `json:"context_window_fallbacks"`
	ContentFilterFallbacks optional[[]string]                `json:"content_filter_fallbacks"`
	RateLimitFallbacks     optional[[]string]                `json:"rate_limit_fallbacks"`
	Degrade                optional[*providers.DegradeReply] `json:"degrade"`
}

// checkModelName checks a model name as the API takes it: text of 1 to 200 bytes.
func checkModelName(c *gin.Context, name string) bool {
	return checkText(c, "name", name, 200, true)
}

func (s *Server) createModel(c *gin.Context) {
	var b modelBody
	if !decode(c, &b) {
		return
	}
	if !checkModelName(c, b.Name) {
		return
	}
	if _, ok := s.fileModel(b.Name); ok {
		definedInFile(c, "model", b.Name)
		return
	}
	if b.Deployments == nil {
		b.Deployments = []DeploymentSpec{}
	}
	if !s.checked(c, "", s.d.Catalog.CheckModel(b.ModelSpec.Config(b.Name))) {
		return
	}
	raw, err := json.Marshal(b.ModelSpec)
	if err != nil {
		s.internal(c, err)
		return
	}
	t := now()
	e := store.CatalogEntry{Kind: store.CatalogModel, Name: b.Name, Spec: raw, CreatedAt: t, UpdatedAt: t, UpdatedBy: who(c).Actor}
	if err := s.d.Store.CreateCatalogEntry(c.Request.Context(), e); err != nil {
		if isConflict(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "model_exists", "name", "A model named "+strconv.Quote(b.Name)+" exists already.")
			return
		}
		s.internal(c, err)
		return
	}
	v := apiModelView(e, withModelIDs(b.Name, b.ModelSpec), false)
	s.audit(c, "model.create", b.Name, "", nil, v)
	s.catalogApplied(c, http.StatusCreated, v)
}

func (s *Server) modelViews(ctx context.Context) ([]modelView, error) {
	entries, err := s.catalogEntries(ctx, store.CatalogModel)
	if err != nil {
		return nil, err
	}
	file := s.d.Catalog.FileCatalog().Models
	out := make([]modelView, 0, len(file)+len(entries))
	inFile := map[string]bool{}
	for _, m := range file {
		out = append(out, modelView{Name: m.Name, ModelSpec: withModelIDs(m.Name, ModelSpecOf(m)), Origin: originFile})
		inFile[m.Name] = true
	}
	for _, e := range entries {
		m, err := DecodeModel(e)
		if err != nil {
			return nil, err
		}
		out = append(out, apiModelView(e, withModelIDs(e.Name, m), inFile[e.Name]))
	}
	return out, nil
}

// withModelIDs fills in what the router gives a deployment that does not say: the upstream model
// (the public model's name) and the id ("provider/model"), so answers show the ids
// /admin/deployments uses.
func withModelIDs(name string, m ModelSpec) ModelSpec {
	m.Deployments = slices.Clone(m.Deployments)
	for i, d := range m.Deployments {
		if d.Model == "" {
			m.Deployments[i].Model = name
		}
		if d.ID == "" {
			m.Deployments[i].ID = d.Provider + "/" + m.Deployments[i].Model
		}
	}
	return m
}

func (s *Server) listModels(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	all, err := s.modelViews(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	writeList(c, window(all, limit, offset), limit, offset, func(v modelView) modelView { return v })
}

func (s *Server) getModel(c *gin.Context) {
	name := modelParam(c)
	all, err := s.modelViews(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	for _, v := range all {
		if v.Name == name {
			c.JSON(http.StatusOK, v)
			return
		}
	}
	notFound(c, "model", "name")
}

// apiModel finds a model the API may change, answering itself when there is none.
func (s *Server) apiModel(c *gin.Context) (store.CatalogEntry, ModelSpec, bool) {
	name := modelParam(c)
	e, found, err := s.catalogEntry(c.Request.Context(), store.CatalogModel, name)
	if err != nil {
		s.internal(c, err)
		return e, ModelSpec{}, false
	}
	if _, inFile := s.fileModel(name); inFile && !found {
		definedInFile(c, "model", name)
		return e, ModelSpec{}, false
	}
	if !found {
		notFound(c, "model", "name")
		return e, ModelSpec{}, false
	}
	m, err := DecodeModel(e)
	if err != nil {
		s.internal(c, err)
		return e, m, false
	}
	return e, m, true
}

func (s *Server) patchModel(c *gin.Context) {
	cur, spec, ok := s.apiModel(c)
	if !ok {
		return
	}
	var b modelPatch
	if !decode(c, &b) {
		return
	}
	next := spec
	setOpt(b.Strategy, &next.Strategy)
	setOpt(b.TokenMultiplier, &next.TokenMultiplier)
	setOpt(b.Retry, &next.Retry)
	setOpt(b.Fallbacks, &next.Fallbacks)
	setOpt(b.ContextWindowFallbacks, &next.ContextWindowFallbacks)
	setOpt(b.ContentFilterFallbacks, &next.ContentFilterFallbacks)
	setOpt(b.RateLimitFallbacks, &next.RateLimitFallbacks)
	setOpt(b.Degrade, &next.Degrade)
	if b.Deployments != nil {
		next.Deployments = *b.Deployments
	}
	if next.Deployments == nil {
		next.Deployments = []DeploymentSpec{}
	}
	if !s.checked(c, "", s.d.Catalog.CheckModel(next.Config(cur.Name))) {
		return
	}
	raw, err := json.Marshal(next)
	if err != nil {
		s.internal(c, err)
		return
	}
	e := store.CatalogEntry{Kind: store.CatalogModel, Name: cur.Name, Spec: raw, CreatedAt: cur.CreatedAt, UpdatedAt: now(), UpdatedBy: who(c).Actor}
	if err := s.d.Store.UpdateCatalogEntry(c.Request.Context(), e); err != nil {
		if isNotFound(err) {
			notFound(c, "model", "name")
			return
		}
		s.internal(c, err)
		return
	}
	_, shadowed := s.fileModel(cur.Name)
	v := apiModelView(e, withModelIDs(cur.Name, next), shadowed)
	s.audit(c, "model.update", cur.Name, "", apiModelView(cur, withModelIDs(cur.Name, spec), shadowed), v)
	s.catalogApplied(c, http.StatusOK, v)
}

func (s *Server) deleteModel(c *gin.Context) {
	cur, spec, ok := s.apiModel(c)
	if !ok {
		return
	}
	if err := s.d.Store.DeleteCatalogEntry(c.Request.Context(), store.CatalogModel, cur.Name); err != nil {
		if isNotFound(err) {
			notFound(c, "model", "name")
			return
		}
		s.internal(c, err)
		return
	}
	_, shadowed := s.fileModel(cur.Name)
	s.audit(c, "model.delete", cur.Name, "", apiModelView(cur, withModelIDs(cur.Name, spec), shadowed), nil)
	s.catalogApplied(c, http.StatusNoContent, nil)
}

// reencrypt seals every stored credential (api_key and the sections' secrets) again with the
// current secret key, so the previous keys can be dropped: the last step of a key rotation.
// Providers whose credentials are all sealed by the current key already are left alone; one that no configured key opens is reported, not changed. Webhook
// secrets are sealed again too (resealWebhooks), reported apart under "webhooks".
func (s *Server) reencrypt(c *gin.Context) {
	if s.d.Secrets == nil {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "secret_key_required", "",
			"No secret key is configured (secrets.key, secrets.key_file or LLMGATE_SECRET_KEY).")
		return
	}
	ctx := c.Request.Context()
	entries, err := s.catalogEntries(ctx, store.CatalogProvider)
	if err != nil {
		s.internal(c, err)
		return
	}
	current := s.d.Secrets.CurrentKeyID()
	resealed, unchanged := []string{}, 0
	failed := []string{}
	for _, e := range entries {
		ids := sealedBy(e)
		if len(ids) == 0 {
			continue
		}
		if !slices.ContainsFunc(ids, func(id string) bool { return id != current }) {
			unchanged++
			continue
		}
		spec, key, err := OpenProvider(e, s.d.Secrets)
		if err != nil {
			s.d.Log.Error("stored provider credential does not open", "provider", e.Name, "err", err)
			failed = append(failed, e.Name)
			continue
		}
		next, err := s.sealedEntry(e.Name, spec, key)
		if err != nil {
			s.internal(c, err)
			return
		}
		e.Secret, e.Spec, e.UpdatedAt, e.UpdatedBy = next.Secret, next.Spec, now(), who(c).Actor
		if err := s.d.Store.UpdateCatalogEntry(ctx, e); err != nil {
			s.internal(c, err)
			return
		}
		resealed = append(resealed, e.Name)
	}
	hooks, ok := s.resealWebhooks(c)
	if !ok {
		return
	}
	out := gin.H{"key_id": current, "resealed": resealed, "unchanged": unchanged, "unreadable": failed, "webhooks": hooks}
	s.audit(c, "secrets.reencrypt", current, "", nil, out)
	if len(resealed) == 0 {
		c.JSON(http.StatusOK, out)
		return
	}
	s.catalogApplied(c, http.StatusOK, out)
}
