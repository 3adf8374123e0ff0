package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/store"
)

// Provider deployments at run time. The config file is the source; an admin change (enable,
// disable, weight) is stored as an override keyed by deployment id, merged over the file whenever
// the routing table is built, and spread to every replica. DELETE removes the override: the
// deployment is back to what the file says.

// DeploymentControl is the running gateway's side of the deployments endpoints; nil disables
// them.
type DeploymentControl interface {
	// Deployments lists the deployments of the routing table in use on this replica, overrides
	// merged in, with their health.
	Deployments() []providers.DeploymentState
	// OverridesChanged applies the stored overrides here at once and has every other replica
	// apply them shortly. deploymentID names the one that changed.
	OverridesChanged(ctx context.Context, deploymentID string) error
}

// MaxDeploymentWeight bounds a weight set through the API.
const MaxDeploymentWeight = 1_000_000

func (s *Server) routeDeployments(a *gin.RouterGroup) {
	s.handle(a, http.MethodGet, "/deployments", read(areaDeployments), s.listDeployments)
	// Catch-all: deployment ids default to "provider/model" and model names may hold "/" too.
	s.handle(a, http.MethodGet, "/deployments/*id", read(areaDeployments), s.getDeployment)
	s.handle(a, http.MethodPatch, "/deployments/*id", global(areaDeployments), s.patchDeployment)
	s.handle(a, http.MethodDelete, "/deployments/*id", global(areaDeployments), s.resetDeployment)
	// POST /deployments/{id}/test (the catch-all takes the suffix too).
	s.handle(a, http.MethodPost, "/deployments/*id", global(areaDeployments), s.testDeployment)
}

// deploymentView is a deployment as the admin API shows it. Health is left out of audit entries.
type deploymentView struct {
	ID            string   `json:"id"`
	Provider      string   `json:"provider"`
	UpstreamModel string   `json:"upstream_model"`
	Models        []string `json:"models"`
	Priority      int      `json:"priority"`
	// FileWeight is the config file's weight; Weight the one in force.
	FileWeight int           `json:"file_weight"`
	Weight     int           `json:"weight"`
	Enabled    bool          `json:"enabled"`
	Override   *overrideView `json:"override"`
	Health     *healthView   `json:"health,omitempty"`
}

// overrideView is a stored override; a null field keeps what the file says.
type overrideView struct {
	Enabled   *bool     `json:"enabled"`
	Weight    *int      `json:"weight"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}

// healthView is what the gateway has learnt of a deployment on this replica.
type healthView struct {
	Breaker     string             `json:"breaker"`
	Available   bool               `json:"available"`
	TTFTMs      float64            `json:"ttft_ms_avg"`
	Succeeded   int64              `json:"succeeded"`
	Failed      int64              `json:"failed"`
	LastFailure *providers.Failure `json:"last_failure"`
}

// viewOf describes a deployment with its override merged in (health left out).
func viewOf(d providers.Deployment, models []string) deploymentView {
	return deploymentView{ID: d.ID, Provider: d.ProviderName, UpstreamModel: d.Model, Models: models, Priority: d.Priority,
		FileWeight: d.FileWeight, Weight: d.Weight, Enabled: d.Enabled, Override: overrideViewOf(d.Override)}
}

func overrideViewOf(o *providers.Override) *overrideView {
	if o == nil {
		return nil
	}
	return &overrideView{Enabled: o.Enabled, Weight: o.Weight, UpdatedBy: o.UpdatedBy, UpdatedAt: o.UpdatedAt.UTC()}
}

// routingOverride is a stored override as the router takes it (nil: none).
func routingOverride(o *store.DeploymentOverride) *providers.Override {
	if o == nil {
		return nil
	}
	return &providers.Override{Enabled: o.Enabled, Weight: o.Weight, UpdatedBy: o.UpdatedBy, UpdatedAt: o.UpdatedAt}
}

// settingsView describes a deployment of the running table as it would run with the stored
// override o (nil: none), for the audit log.
func settingsView(d providers.DeploymentState, o *store.DeploymentOverride) deploymentView {
	return viewOf(d.Merged(routingOverride(o)), d.Models)
}

// runningView describes a deployment as this replica runs it, health included.
func runningView(d providers.DeploymentState) deploymentView {
	v := viewOf(*d.Deployment, d.Models)
	st := d.Status
	v.Health = &healthView{Breaker: st.Breaker, Available: st.Available, TTFTMs: st.TTFTMs, Succeeded: st.Succeeded,
		Failed: st.Failed, LastFailure: st.LastFailure}
	return v
}

func deploymentParam(c *gin.Context) string { return strings.TrimPrefix(c.Param("id"), "/") }

// running finds a deployment of the running table.
func (s *Server) running(id string) (providers.DeploymentState, bool) {
	for _, d := range s.d.Deployments.Deployments() {
		if d.ID == id {
			return d, true
		}
	}
	return providers.DeploymentState{}, false
}

func deploymentNotFound(c *gin.Context, id string) {
	fail(c, http.StatusNotFound, api.TypeNotFound, "deployment_not_found", "id",
		"No deployment with id "+strconv.Quote(id)+" in the routing table in use.")
}

func noOverride(c *gin.Context, id string) {
	fail(c, http.StatusNotFound, api.TypeNotFound, "override_not_found", "id",
		"Deployment "+strconv.Quote(id)+" has no override: it runs as the config file says.")
}

func (s *Server) listDeployments(c *gin.Context) {
	deps := s.d.Deployments.Deployments()
	out := make([]deploymentView, 0, len(deps))
	for _, d := range deps {
		out = append(out, runningView(d))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

func (s *Server) getDeployment(c *gin.Context) {
	id := deploymentParam(c)
	d, ok := s.running(id)
	if !ok {
		deploymentNotFound(c, id)
		return
	}
	c.JSON(http.StatusOK, runningView(d))
}

// deploymentPatch is the body of PATCH /admin/deployments/{id}: either field or both; null
// removes that part of the override.
type deploymentPatch struct {
	Enabled optional[bool] `json:"enabled"`
	Weight  optional[int]  `json:"weight"`
}

// storedOverride returns a deployment's override from the store (the source of truth, which
// another replica may have changed a moment ago), nil when there is none.
func (s *Server) storedOverride(ctx context.Context, id string) (*store.DeploymentOverride, error) {
	all, err := s.d.Store.DeploymentOverrides(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.DeploymentID == id {
			return &o, nil
		}
	}
	return nil, nil
}

// patchDeployment merges the body into the deployment's override. An override left with neither
// field set is removed.
func (s *Server) patchDeployment(c *gin.Context) {
	id := deploymentParam(c)
	d, ok := s.running(id)
	if !ok {
		deploymentNotFound(c, id)
		return
	}
	var b deploymentPatch
	if !decode(c, &b) {
		return
	}
	if !b.Enabled.Set && !b.Weight.Set {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "missing_field", "", "Send enabled, weight or both (null puts a field back to the config file's value).")
		return
	}
	if w := b.Weight.Val; w != nil && (*w < 1 || *w > MaxDeploymentWeight) {
		invalid(c, "weight", "must be an integer from 1 to "+strconv.Itoa(MaxDeploymentWeight)+".")
		return
	}
	ctx := c.Request.Context()
	cur, err := s.storedOverride(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	next := store.DeploymentOverride{DeploymentID: id}
	if cur != nil {
		next.Enabled, next.Weight = cur.Enabled, cur.Weight
	}
	if b.Enabled.Set {
		next.Enabled = b.Enabled.Val
	}
	if b.Weight.Set {
		next.Weight = b.Weight.Val
	}
	next.UpdatedBy, next.UpdatedAt = who(c).Actor, time.Now().UTC().Truncate(time.Microsecond)
	after := &next
	if next.Enabled == nil && next.Weight == nil {
		after = nil
		if err := s.d.Store.DeleteDeploymentOverride(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.internal(c, err)
			return
		}
	} else {
		if err := s.d.Store.PutDeploymentOverride(ctx, next); err != nil {
			s.internal(c, err)
			return
		}
	}
	s.audit(c, "deployment.update", id, "", settingsView(d, cur), settingsView(d, after))
	s.applied(c, id)
}

// resetDeployment removes a deployment's override. It also removes the override of an id the
// running table no longer has (answering 204, as there is no deployment to show).
func (s *Server) resetDeployment(c *gin.Context) {
	id := deploymentParam(c)
	ctx := c.Request.Context()
	cur, err := s.storedOverride(ctx, id)
	if err != nil {
		s.internal(c, err)
		return
	}
	if cur == nil {
		noOverride(c, id)
		return
	}
	if err := s.d.Store.DeleteDeploymentOverride(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) { // removed meanwhile by another admin
			noOverride(c, id)
			return
		}
		s.internal(c, err)
		return
	}
	var before, after any = gin.H{"id": id, "override": overrideViewOf(routingOverride(cur))}, gin.H{"id": id, "override": nil}
	d, inTable := s.running(id)
	if inTable {
		before, after = settingsView(d, cur), settingsView(d, nil)
	}
	s.audit(c, "deployment.reset", id, "", before, after)
	if !inTable {
		if err := s.d.Deployments.OverridesChanged(ctx, id); err != nil {
			s.d.Log.Warn("deployment override removed but not announced", "deployment", id, "err", err)
		}
		c.Status(http.StatusNoContent)
		return
	}
	s.applied(c, id)
}

// applied applies a stored change everywhere and answers the deployment as this replica now runs
// it. The change is stored (and audited) already: when applying fails the answer says so, and a
// retry of the same request applies it.
func (s *Server) applied(c *gin.Context, id string) {
	if err := s.d.Deployments.OverridesChanged(c.Request.Context(), id); err != nil {
		s.d.Log.Error("deployment override stored but not applied", "deployment", id, "err", err)
		fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "change_not_applied", "",
			"The change is stored but could not be applied to the running gateways yet; retry the request to apply it.")
		return
	}
	d, ok := s.running(id)
	if !ok { // a file reload removed it meanwhile
		deploymentNotFound(c, id)
		return
	}
	c.JSON(http.StatusOK, runningView(d))
}

// maxTestTimeout bounds a test call below the admin listener's write timeout.
const maxTestTimeout = 20 * time.Second

// deploymentTestBody is the optional body of POST /admin/deployments/{id}/test.
type deploymentTestBody struct {
	// Endpoint is chat/completions (default) or embeddings.
	Endpoint string `json:"endpoint"`
}

// testDeployment sends one minimal request to a deployment of the running table through its
// provider adapter, as a request would go, and answers the latency and the upstream's answer or
// error. It bypasses the breaker: a deployment is tested most often when its breaker is open,
// and an admin's test must neither wait for the breaker nor trip or close it. A disabled
// deployment can be tested too (before enabling it).
func (s *Server) testDeployment(c *gin.Context) {
	path := deploymentParam(c)
	id, ok := strings.CutSuffix(path, "/test")
	if !ok {
		fail(c, http.StatusNotFound, api.TypeNotFound, "unknown_url", "", "Unknown admin URL: "+c.Request.URL.Path+" (POST /admin/deployments/{id}/test tests a deployment).")
		return
	}
	var b deploymentTestBody
	if !decodeOptional(c, &b) {
		return
	}
	ep := providers.Endpoint(b.Endpoint)
	switch ep {
	case "":
		ep = providers.ChatCompletions
	case providers.ChatCompletions, providers.Embeddings:
	default:
		invalid(c, "endpoint", "want chat/completions or embeddings.")
		return
	}
	d, found := s.running(id)
	if !found {
		deploymentNotFound(c, id)
		return
	}
	timeout := min(d.Timeouts.FirstByte, maxTestTimeout)
	if timeout <= 0 {
		timeout = maxTestTimeout
	}
	r := providers.Probe(c.Request.Context(), d.Deployment, ep, timeout)
	out := gin.H{"deployment": d.ID, "provider": d.ProviderName, "upstream_model": d.Model, "endpoint": string(ep),
		"ok": r.OK(), "status": r.Status, "latency_ms": float64(r.Latency.Microseconds()) / 1000, "answer": r.Answer, "error": nil}
	if r.Err != nil {
		out["error"] = r.Err.Error()
	}
	c.JSON(http.StatusOK, out)
}
