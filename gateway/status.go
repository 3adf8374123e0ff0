package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// providerView is one provider in GET /v1/providers: its deployments the caller's key may use.
type providerView struct {
	Name        string           `json:"name"`
	Deployments []deploymentView `json:"deployments"`
	index       map[string]int   // deployment id → position (a deployment may serve several models)
}

// deploymentView is a deployment and the public models it serves.
type deploymentView struct {
	DeploymentStatus
	Models []string `json:"models"`
}

// handleProviders lists the providers and deployments behind the models the caller's key may
// use, with their health: breaker state, moving-average time to first byte, outcome counts.
func (g *Gateway) handleProviders(c *gin.Context) {
	x, ok := g.authenticate(c, "providers")
	if !ok {
		return
	}
	defer x.settle()
	r := g.router.Load()
	var order []string
	byName := map[string]*providerView{}
	for _, m := range r.Models() {
		if !x.id.Allows(m) {
			continue
		}
		for _, d := range r.Deployments(m) {
			p := byName[d.ProviderName]
			if p == nil {
				p = &providerView{Name: d.ProviderName, Deployments: []deploymentView{}, index: map[string]int{}}
				byName[d.ProviderName] = p
				order = append(order, d.ProviderName)
			}
			i, seen := p.index[d.ID]
			if !seen {
				i = len(p.Deployments)
				p.index[d.ID] = i
				p.Deployments = append(p.Deployments, deploymentView{DeploymentStatus: g.health.status(d)})
			}
			p.Deployments[i].Models = append(p.Deployments[i].Models, m)
		}
	}
	data := make([]*providerView, 0, len(order))
	for _, n := range order {
		data = append(data, byName[n])
	}
	x.status = http.StatusOK
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

// modelStatus is one public model in GET /v1/status.
type modelStatus struct {
	ID string `json:"id"`
	// Status is available (every deployment's breaker lets requests through), degraded (some do)
	// or unavailable (none does).
	Status      string `json:"status"`
	Deployments int    `json:"deployments"`
	Available   int    `json:"available"`
}

// handleStatus reports the gateway's health as the caller sees it: the store, the quota store,
// and each public model the key may use.
func (g *Gateway) handleStatus(c *gin.Context) {
	x, ok := g.authenticate(c, "status")
	if !ok {
		return
	}
	defer x.settle()
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
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
	overall := "ok"
	for _, m := range r.Models() {
		if !x.id.Allows(m) {
			continue
		}
		ms := modelStatus{ID: m}
		for _, d := range r.Deployments(m) {
			ms.Deployments++
			if g.health.status(d).Available {
				ms.Available++
			}
		}
		switch ms.Available {
		case ms.Deployments:
			ms.Status = "available"
		case 0:
			ms.Status = "unavailable"
			overall = "degraded"
		default:
			ms.Status = "degraded"
			overall = "degraded"
		}
		models = append(models, ms)
	}
	if storeState != "ok" || quotaState != "ok" {
		overall = "degraded"
	}
	x.status = http.StatusOK
	c.JSON(http.StatusOK, gin.H{"status": overall, "store": storeState, "quota": quotaState, "models": models})
}
