package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/store"
)

// A/B experiments over the admin API. An experiment on a public model splits the model's traffic
// between variants (other public models, or one deployment), by weight, each caller for good
// (providers.Experiments). It is made as a draft, then started, paused, started again and
// finally stopped; every change is stored, audited, applied here and announced to the other
// replicas (ExperimentControl), as the catalog's are. Its results are computed from the usage
// records, which name the experiment and variant of every request it routed.

// ExperimentControl is the running gateway's side of /admin/experiments; nil disables them.
type ExperimentControl interface {
	// HasModel reports whether the routing table in use has the public model.
	HasModel(model string) bool
	// HasDeployment reports whether the deployment id is one of the model's in the table in use.
	HasDeployment(model, id string) bool
	// ExperimentsChanged applies the stored experiments here at once and has every other replica
	// apply them shortly.
	ExperimentsChanged(ctx context.Context) error
}

// Bounds of experiments, which keep the metric series by experiment and variant few.
const (
	// MaxVariants bounds the variants of one experiment.
	MaxVariants = 10
	// MaxRunningExperiments bounds the experiments running at once.
	MaxRunningExperiments = 20
	// MaxVariantWeight bounds a variant's weight.
	MaxVariantWeight = 1_000_000
	// maxExclusions bounds each exclusion list.
	maxExclusions = 1000
)

func (s *Server) routeExperiments(a *gin.RouterGroup) {
	// Experiments span every tenant and their results add up every tenant's requests: read, but
	// not by a tenant-scoped token.
	shared := access{area: areaExperiments, global: true}
	s.handle(a, http.MethodPost, "/experiments", global(areaExperiments), s.createExperiment)
	s.handle(a, http.MethodGet, "/experiments", shared, s.listExperiments)
	s.handle(a, http.MethodGet, "/experiments/:id", shared, s.getExperiment)
	s.handle(a, http.MethodPatch, "/experiments/:id", global(areaExperiments), s.patchExperiment)
	s.handle(a, http.MethodPost, "/experiments/:id/start", global(areaExperiments), s.experimentState(store.ExperimentRunning))
	s.handle(a, http.MethodPost, "/experiments/:id/pause", global(areaExperiments), s.experimentState(store.ExperimentPaused))
	s.handle(a, http.MethodPost, "/experiments/:id/stop", global(areaExperiments), s.experimentState(store.ExperimentStopped))
	s.handle(a, http.MethodGet, "/experiments/:id/results", shared, s.experimentResults)
}

// VariantSpec is one variant of an experiment, as the API and the store spell it.
type VariantSpec struct {
	Name string `json:"name"`
	// Model is the public model the variant's requests go to (stored filled in: the
	// experiment's own when the body leaves it out).
	Model string `json:"model,omitempty"`
	// Deployment narrows the variant to one deployment of Model ("": any, as Model routes).
	Deployment string `json:"deployment,omitempty"`
	Weight     int    `json:"weight"`
}

// experimentSpec is what an experiment's store row keeps as its spec.
type experimentSpec struct {
	Description    string        `json:"description"`
	Variants       []VariantSpec `json:"variants"`
	ExcludeKeys    []string      `json:"exclude_keys"`
	ExcludeTenants []string      `json:"exclude_tenants"`
}

// DecodeExperiment reads a stored experiment as routing needs it.
func DecodeExperiment(e store.Experiment) (providers.Experiment, error) {
	var sp experimentSpec
	if err := json.Unmarshal(e.Spec, &sp); err != nil {
		return providers.Experiment{}, err
	}
	out := providers.Experiment{ID: e.ID, Model: e.Model, Salt: e.Salt, ExcludeKeys: sp.ExcludeKeys, ExcludeTenants: sp.ExcludeTenants}
	for _, v := range sp.Variants {
		out.Variants = append(out.Variants, providers.Variant{Name: v.Name, Model: v.Model, Deployment: v.Deployment, Weight: v.Weight})
	}
	return out, nil
}

// experimentView is an experiment as the admin API shows it.
type experimentView struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	State string `json:"state"`
	Salt  string `json:"salt"`
	experimentSpec
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

func experimentViewOf(e store.Experiment, sp experimentSpec) experimentView {
	sp.ExcludeKeys, sp.ExcludeTenants = orNone(sp.ExcludeKeys), orNone(sp.ExcludeTenants)
	if sp.Variants == nil {
		sp.Variants = []VariantSpec{}
	}
	return experimentView{ID: e.ID, Model: e.Model, State: e.State, Salt: e.Salt, experimentSpec: sp,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, UpdatedBy: e.UpdatedBy}
}

// experimentBody is the body of POST /admin/experiments (the spec's fields spelled out, so a
// decoding error names the field as the body does).
type experimentBody struct {
	ID             string        `json:"id"`
	Model          string        `json:"model"`
	Salt           *string       `json:"salt"`
	Description    string        `json:"description"`
	Variants       []VariantSpec `json:"variants"`
	ExcludeKeys    []string      `json:"exclude_keys"`
	ExcludeTenants []string      `json:"exclude_tenants"`
}

// experimentPatch is the body of PATCH /admin/experiments/{id}: named fields replace. Variants
// change only in a draft: once callers have been assigned, new weights would move them.
type experimentPatch struct {
	Description    *string        `json:"description"`
	Variants       *[]VariantSpec `json:"variants"`
	ExcludeKeys    *[]string      `json:"exclude_keys"`
	ExcludeTenants *[]string      `json:"exclude_tenants"`
}

// checkExperimentSpec checks a spec against the routing table in use, answering 400 itself
// (naming the field), and fills in each variant's model.
func (s *Server) checkExperimentSpec(c *gin.Context, model string, sp *experimentSpec) bool {
	if !checkText(c, "description", sp.Description, 2000, false) {
		return false
	}
	if n := len(sp.Variants); n < 2 || n > MaxVariants {
		invalid(c, "variants", "want 2 to "+strconv.Itoa(MaxVariants)+" variants.")
		return false
	}
	seen := map[string]bool{}
	for i := range sp.Variants {
		v := &sp.Variants[i]
		f := "variants[" + strconv.Itoa(i) + "]."
		if !validID(v.Name) || len(v.Name) > 64 {
			invalid(c, f+"name", "want 1 to 64 characters of letters, digits and . _ : @ -.")
			return false
		}
		if seen[v.Name] {
			invalid(c, f+"name", strconv.Quote(v.Name)+" names another variant already.")
			return false
		}
		seen[v.Name] = true
		if v.Weight < 1 || v.Weight > MaxVariantWeight {
			invalid(c, f+"weight", "want 1 to "+strconv.Itoa(MaxVariantWeight)+".")
			return false
		}
		if v.Model == "" {
			v.Model = model
		}
		if !s.d.Experiments.HasModel(v.Model) {
			invalid(c, f+"model", "no public model "+strconv.Quote(v.Model)+" in the routing table.")
			return false
		}
		if v.Deployment != "" && !s.d.Experiments.HasDeployment(v.Model, v.Deployment) {
			invalid(c, f+"deployment", "model "+strconv.Quote(v.Model)+" has no deployment "+strconv.Quote(v.Deployment)+".")
			return false
		}
	}
	var ok bool
	if sp.ExcludeKeys, ok = checkIDList(c, "exclude_keys", sp.ExcludeKeys); !ok {
		return false
	}
	sp.ExcludeTenants, ok = checkIDList(c, "exclude_tenants", sp.ExcludeTenants)
	return ok
}

// checkIDList checks a list of ids and returns it without duplicates.
func checkIDList(c *gin.Context, field string, ids []string) ([]string, bool) {
	if len(ids) > maxExclusions {
		invalid(c, field, "at most "+strconv.Itoa(maxExclusions)+" ids.")
		return nil, false
	}
	var out []string
	for i, id := range ids {
		if !checkID(c, field+"["+strconv.Itoa(i)+"]", id) {
			return nil, false
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, true
}

// newSalt makes an experiment's salt when the body gives none.
func newSalt() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24)
	return hex.EncodeToString(b)
}

func (s *Server) createExperiment(c *gin.Context) {
	var b experimentBody
	if !decode(c, &b) {
		return
	}
	if !checkID(c, "id", b.ID) {
		return
	}
	if b.Model == "" || !s.d.Experiments.HasModel(b.Model) {
		invalid(c, "model", "want a public model of the routing table.")
		return
	}
	sp := experimentSpec{Description: b.Description, Variants: b.Variants, ExcludeKeys: b.ExcludeKeys, ExcludeTenants: b.ExcludeTenants}
	if !s.checkExperimentSpec(c, b.Model, &sp) {
		return
	}
	salt := newSalt()
	if b.Salt != nil {
		if !checkText(c, "salt", *b.Salt, 128, true) {
			return
		}
		salt = *b.Salt
	}
	raw, err := json.Marshal(sp)
	if err != nil {
		s.internal(c, err)
		return
	}
	t := now()
	e := store.Experiment{ID: b.ID, Model: b.Model, State: store.ExperimentDraft, Salt: salt, Spec: raw,
		CreatedAt: t, UpdatedAt: t, UpdatedBy: who(c).Actor}
	if err := s.d.Store.CreateExperiment(c.Request.Context(), e); err != nil {
		if isConflict(err) {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "experiment_exists", "id", "An experiment "+strconv.Quote(b.ID)+" exists already.")
			return
		}
		s.internal(c, err)
		return
	}
	v := experimentViewOf(e, sp)
	s.audit(c, "experiment.create", e.ID, "", nil, v)
	c.JSON(http.StatusCreated, v) // a draft: nothing to apply
}

// experiments reads the stored experiments with their specs.
func (s *Server) experiments(ctx context.Context) ([]store.Experiment, []experimentSpec, error) {
	all, err := s.d.Store.Experiments(ctx)
	if err != nil {
		return nil, nil, err
	}
	specs := make([]experimentSpec, len(all))
	for i, e := range all {
		if err := json.Unmarshal(e.Spec, &specs[i]); err != nil {
			return nil, nil, err
		}
	}
	return all, specs, nil
}

// experiment finds one, answering itself (404, 500) when it cannot.
func (s *Server) experiment(c *gin.Context) (store.Experiment, experimentSpec, bool) {
	all, specs, err := s.experiments(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return store.Experiment{}, experimentSpec{}, false
	}
	for i, e := range all {
		if e.ID == c.Param("id") {
			return e, specs[i], true
		}
	}
	notFound(c, "experiment", "id")
	return store.Experiment{}, experimentSpec{}, false
}

func (s *Server) listExperiments(c *gin.Context) {
	limit, offset, ok := pageParams(c)
	if !ok {
		return
	}
	all, specs, err := s.experiments(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return
	}
	views := make([]experimentView, len(all))
	for i, e := range all {
		views[i] = experimentViewOf(e, specs[i])
	}
	writeList(c, window(views, limit, offset), limit, offset, func(v experimentView) experimentView { return v })
}

func (s *Server) getExperiment(c *gin.Context) {
	if e, sp, ok := s.experiment(c); ok {
		c.JSON(http.StatusOK, experimentViewOf(e, sp))
	}
}

// experimentStopped answers a change of a stopped experiment.
func experimentStopped(c *gin.Context) {
	fail(c, http.StatusConflict, api.TypeInvalidRequest, "experiment_stopped", "id", "The experiment is stopped: it cannot change any more (make another).")
}

// saveExperiment stores a changed experiment, audits it, and applies it when it runs or ran
// (every replica drops or takes it), answering the new view.
func (s *Server) saveExperiment(c *gin.Context, action string, before store.Experiment, beforeSpec experimentSpec, next store.Experiment, sp experimentSpec) {
	raw, err := json.Marshal(sp)
	if err != nil {
		s.internal(c, err)
		return
	}
	next.Spec, next.UpdatedAt, next.UpdatedBy = raw, now(), who(c).Actor
	if err := s.d.Store.UpdateExperiment(c.Request.Context(), next); err != nil {
		if isNotFound(err) {
			notFound(c, "experiment", "id")
			return
		}
		s.internal(c, err)
		return
	}
	v := experimentViewOf(next, sp)
	s.audit(c, action, next.ID, "", experimentViewOf(before, beforeSpec), v)
	if before.State != store.ExperimentRunning && next.State != store.ExperimentRunning {
		c.JSON(http.StatusOK, v) // it took no traffic and takes none: nothing to apply
		return
	}
	if err := s.d.Experiments.ExperimentsChanged(c.Request.Context()); err != nil {
		s.d.Log.Error("experiment change stored but not applied", "experiment", next.ID, "err", err)
		fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "change_not_applied", "",
			"The change is stored but could not be applied to the running gateways yet; it applies with the next change or within seconds.")
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) patchExperiment(c *gin.Context) {
	cur, sp, ok := s.experiment(c)
	if !ok {
		return
	}
	var b experimentPatch
	if !decode(c, &b) {
		return
	}
	if cur.State == store.ExperimentStopped {
		experimentStopped(c)
		return
	}
	next := sp
	next.Variants = slices.Clone(sp.Variants)
	if b.Description != nil {
		next.Description = *b.Description
	}
	if b.Variants != nil {
		if cur.State != store.ExperimentDraft {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "experiment_started", "variants",
				"variants: change only in a draft; once callers are assigned new weights would move them (make another experiment).")
			return
		}
		next.Variants = *b.Variants
	}
	if b.ExcludeKeys != nil {
		next.ExcludeKeys = *b.ExcludeKeys
	}
	if b.ExcludeTenants != nil {
		next.ExcludeTenants = *b.ExcludeTenants
	}
	if !s.checkExperimentSpec(c, cur.Model, &next) {
		return
	}
	s.saveExperiment(c, "experiment.update", cur, sp, cur, next)
}

// experimentState moves an experiment to state: running (from a draft or paused, when no other
// experiment runs on its model), paused (from running) or stopped (from any but stopped).
func (s *Server) experimentState(state string) gin.HandlerFunc {
	action := map[string]string{store.ExperimentRunning: "experiment.start", store.ExperimentPaused: "experiment.pause",
		store.ExperimentStopped: "experiment.stop"}[state]
	return func(c *gin.Context) {
		cur, sp, ok := s.experiment(c)
		if !ok {
			return
		}
		switch {
		case cur.State == store.ExperimentStopped:
			experimentStopped(c)
			return
		case cur.State == state, state == store.ExperimentPaused && cur.State != store.ExperimentRunning:
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "experiment_state", "id",
				"The experiment is "+cur.State+": it cannot be made "+state+".")
			return
		}
		if state == store.ExperimentRunning && !s.startable(c, cur, &sp) {
			return
		}
		next := cur
		next.State = state
		s.saveExperiment(c, action, cur, sp, next, sp)
	}
}

// startable checks that an experiment may run: its variants still route (the catalog may have
// changed since it was made), no other experiment runs on its model, and there is room.
func (s *Server) startable(c *gin.Context, e store.Experiment, sp *experimentSpec) bool {
	if !s.checkExperimentSpec(c, e.Model, sp) {
		return false
	}
	all, err := s.d.Store.Experiments(c.Request.Context())
	if err != nil {
		s.internal(c, err)
		return false
	}
	running := 0
	for _, o := range all {
		if o.State != store.ExperimentRunning || o.ID == e.ID {
			continue
		}
		running++
		if o.Model == e.Model {
			fail(c, http.StatusConflict, api.TypeInvalidRequest, "experiment_running", "id",
				"Experiment "+strconv.Quote(o.ID)+" runs on model "+strconv.Quote(e.Model)+": pause or stop it first.")
			return false
		}
	}
	if running >= MaxRunningExperiments {
		fail(c, http.StatusConflict, api.TypeInvalidRequest, "too_many_experiments", "id",
			"At most "+strconv.Itoa(MaxRunningExperiments)+" experiments run at once: pause or stop one first.")
		return false
	}
	return true
}

// percentiles is a measure's p50 and p95 in milliseconds (null without samples).
type percentiles struct {
	Samples int64  `json:"samples"`
	P50     *int64 `json:"p50"`
	P95     *int64 `json:"p95"`
}

func percentilesOf(n, p50, p95 int64) percentiles {
	if n == 0 {
		return percentiles{}
	}
	return percentiles{Samples: n, P50: &p50, P95: &p95}
}

// variantResults is one variant's line of the results. Ratios are null when their sample is
// empty; costs are decimal USD strings.
type variantResults struct {
	Variant           string      `json:"variant"`
	Model             string      `json:"model"`
	Deployment        string      `json:"deployment,omitempty"`
	Weight            int         `json:"weight"`
	Requests          int64       `json:"requests"`
	Errors            int64       `json:"errors"`
	ErrorRate         *float64    `json:"error_rate"`
	LatencyMS         percentiles `json:"latency_ms"`
	TTFTMS            percentiles `json:"ttft_ms"`
	PromptTokens      int64       `json:"prompt_tokens"`
	CompletionTokens  int64       `json:"completion_tokens"`
	TokensPerRequest  *float64    `json:"tokens_per_request"`
	CostSamples       int64       `json:"cost_samples"`
	CostUSD           string      `json:"cost_usd"`
	CostUSDPerRequest *string     `json:"cost_usd_per_request"`
}

func resultsOf(r store.VariantResult) variantResults {
	out := variantResults{Variant: r.Variant, Requests: r.Requests, Errors: r.Errors,
		LatencyMS:    percentilesOf(r.LatencySamples, r.LatencyP50MS, r.LatencyP95MS),
		TTFTMS:       percentilesOf(r.TTFTSamples, r.TTFTP50MS, r.TTFTP95MS),
		PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, CostSamples: r.CostSamples,
		CostUSD: billing.FormatPico(r.CostPicoUSD)}
	if r.Requests > 0 {
		rate := float64(r.Errors) / float64(r.Requests)
		tokens := float64(r.PromptTokens+r.CompletionTokens) / float64(r.Requests)
		out.ErrorRate, out.TokensPerRequest = &rate, &tokens
	}
	if r.CostSamples > 0 && r.CostPicoUSD != nil {
		per := billing.FormatPico(new(big.Int).Quo(r.CostPicoUSD, big.NewInt(r.CostSamples)))
		out.CostUSDPerRequest = &per
	}
	return out
}

// experimentResults answers GET /admin/experiments/{id}/results: per variant of the experiment
// (and any other variant its records name), what its usage records add up to.
func (s *Server) experimentResults(c *gin.Context) {
	e, sp, ok := s.experiment(c)
	if !ok {
		return
	}
	got, err := s.d.Store.ExperimentResults(c.Request.Context(), e.ID)
	if err != nil {
		s.internal(c, err)
		return
	}
	byName := map[string]store.VariantResult{}
	for _, r := range got {
		byName[r.Variant] = r
	}
	out := make([]variantResults, 0, len(sp.Variants))
	for _, v := range sp.Variants {
		r := byName[v.Name]
		r.Variant = v.Name
		line := resultsOf(r)
		line.Model, line.Deployment, line.Weight = v.Model, v.Deployment, v.Weight
		out = append(out, line)
		delete(byName, v.Name)
	}
	for _, r := range got { // variants no longer defined, in name order
		if _, left := byName[r.Variant]; left {
			out = append(out, resultsOf(r))
		}
	}
	c.JSON(http.StatusOK, gin.H{"object": "experiment.results", "experiment": e.ID, "model": e.Model, "state": e.State, "variants": out})
}
