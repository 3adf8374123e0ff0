package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/providers"
)

// providerView is one provider in GET /v1/providers: its deployments the caller's key may use.
type providerView struct {
	Name        string           `json:"name"`
	Deployments []deploymentView `json:"deployments"`
}

// deploymentView is a deployment and the public models it serves.
type deploymentView struct {
	providers.DeploymentStatus
	Models []string `json:"models"`
}

// handleProviders lists the providers and deployments behind the models the caller's key may
// use, with their health: breaker state, moving-average time to first byte, outcome counts.
func (g *Gateway) handleProviders(c *gin.Context) {
	x, ok := g.authenticate(c, "providers")
	if !ok {
		return
	}
	var out outcome
	defer x.settle(&out)
	data := []*providerView{}
	byName := map[string]*providerView{}
	for _, d := range g.Deployments() {
		models := slices.DeleteFunc(d.Models, func(m string) bool { return !x.id.Allows(m) })
		if len(models) == 0 {
			continue
		}
		p := byName[d.ProviderName]
		if p == nil {
			p = &providerView{Name: d.ProviderName}
			byName[d.ProviderName] = p
			data = append(data, p)
		}
		p.Deployments = append(p.Deployments, deploymentView{DeploymentStatus: d.Status, Models: models})
	}
	out.status = http.StatusOK
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

// modelStatus is one public model in GET /v1/status.
type modelStatus struct {
	ID string `json:"id"`
	// Status is available (every enabled deployment's breaker lets requests through), degraded
	// (some do) or unavailable (none does, or every deployment is disabled).
	Status      string `json:"status"`
	Deployments int    `json:"deployments"`
	Available   int    `json:"available"`
	// Disabled counts the deployments an admin override disabled; they are not available, and
	// not a degradation either.
	Disabled int `json:"disabled"`
	// Mock is true when a deployment of the model is on a simulated provider (the built-in mock):
	// some answers may be made up rather than a real model's.
	Mock bool `json:"mock"`
}

// simulated is implemented by providers that answer with made-up text and call no upstream (the
// built-in mock), so that /v1/status can tell a client which models are not real.
type simulated interface{ Simulated() bool }

// mockWarning is the /v1/status warning naming the models a simulated provider serves.
func mockWarning(models []string) string {
	return "models served by the mock provider (simulated answers, no upstream is called): " +
		strings.Join(models, ", ") + "; the gateway's operator has to configure a real provider for them"
}

// handleStatus reports the gateway's health as the caller sees it: the store, the quota store,
// and each public model the key may use.
func (g *Gateway) handleStatus(c *gin.Context) {
	x, ok := g.authenticate(c, "status")
	if !ok {
		return
	}
	var out outcome
	defer x.settle(&out)
	if wantsEvents(c.Request) {
		out = x.streamEvents("status", func(ctx context.Context) (any, error) { return x.statusBody(ctx), nil }, nil)
		return
	}
	out.status = http.StatusOK
	c.JSON(http.StatusOK, x.statusBody(c.Request.Context()))
}

// statusBody is the answer of GET /v1/status for the exchange's key.
func (x *exchange) statusBody(ctx context.Context) gin.H {
	g := x.g
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	storeState := "ok"
	if err := g.store.Ping(ctx); err != nil {
		storeState = "down"
	}
	quotaState := "ok"
	if !g.quotaOK() {
		quotaState = "fallback"
	}
	r := g.router.Load()
	models := []modelStatus{}
	var mocked []string // models a simulated provider serves
	overall := "ok"
	for _, m := range r.Models() {
		if !x.id.Allows(m) {
			continue
		}
		ms := modelStatus{ID: m}
		for _, d := range r.Deployments(m) {
			if s, ok := d.Provider.(simulated); ok && s.Simulated() {
				ms.Mock = true
			}
			ms.Deployments++
			if !d.Enabled {
				ms.Disabled++
			} else if g.balancer.Status(d).Available {
				ms.Available++
			}
		}
		switch ms.Available {
		case 0:
			ms.Status = "unavailable"
			overall = "degraded"
		case ms.Deployments - ms.Disabled:
			ms.Status = "available"
		default:
			ms.Status = "degraded"
			overall = "degraded"
		}
		models = append(models, ms)
		if ms.Mock {
			mocked = append(mocked, m)
		}
	}
	warnings := []string{}
	if len(mocked) > 0 {
		warnings = append(warnings, mockWarning(mocked))
	}
	if storeState != "ok" || quotaState != "ok" {
		overall = "degraded"
	}
	if !g.ready.Load() {
		overall = "draining" // shutting down: still serving, but a client should look elsewhere
	}
	return gin.H{"status": overall, "store": storeState, "quota": quotaState, "models": models, "warnings": warnings}
}

// Balancer is what the gateway has learnt of each deployment (breakers, latency), for the
// active health check to feed.
func (g *Gateway) Balancer() *providers.Balancer { return g.balancer }

// Deployments lists every deployment of the routing table in use, disabled ones included, once
// per id, with its health on this replica (see providers.Balancer.States).
func (g *Gateway) Deployments() []providers.DeploymentState {
	return g.balancer.States(g.router.Load())
}
