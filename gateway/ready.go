package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// SpoolState is the usage spool's room as readiness sees it (audit.Recorder.SpoolState).
type SpoolState struct {
	Enabled bool  // false: there is no spool, records the store cannot take are lost
	Bytes   int64 // on disk now
	Max     int64 // bound (0: none)
	Full    bool  // it would refuse a record now
}

// Readiness is the body of /health/ready on both listeners: whether a load balancer should send
// this replica requests, why not, and the state of each dependency.
type Readiness struct {
	// Status is ok, degraded (ready, but a dependency is down and the replica works around it),
	// unavailable (not ready: it cannot serve) or draining (not ready: shutting down).
	Status string `json:"status"`
	// Reason says why the replica is not ready: shutting_down, config_not_loaded,
	// store_down_spool_full, store_down_no_spool or store_down_no_cached_keys; empty while ready.
	Reason       string `json:"reason,omitempty"`
	ShuttingDown bool   `json:"shutting_down"`
	// Config is loaded once the routing table is in place (a failed reload keeps the last one).
	Config string `json:"config"`
	// Store is ok or down (it did not answer a ping within two seconds).
	Store string `json:"store"`
	// Quota is ok, or fallback while the shared limiter (Redis) is down and quota.fallback rules.
	Quota string `json:"quota"`
	// Spool is ok, full (it refuses records), disabled (no spool directory) or unknown (not
	// reported: Deps.Spool is nil).
	Spool         string `json:"spool"`
	SpoolBytes    int64  `json:"spool_bytes"`
	SpoolMaxBytes int64  `json:"spool_max_bytes"`
	// CachedKeys says the key cache holds valid keys, which it serves while the store is down.
	CachedKeys bool `json:"cached_keys"`
}

// readyPingTimeout bounds the store ping of one readiness check: probes time out after a second
// or a few, and a store that slow is as good as down for this purpose.
const readyPingTimeout = 2 * time.Second

// Readiness checks whether this replica can serve, for /health/ready on both listeners. Only a
// replica that cannot serve says no: while shutting down; without a routing table; while the
// store is down and either the spool cannot take usage records (full, or there is none: every
// request would lose its record) or the replica knows no valid key (every request would get 503). With the store down
// but keys known and spool room left, requests with those keys go on (keys served from the
// cache, usage to the spool), and so do other replicas': pulling every replica out of the load
// balancer for it would turn a degradation into an outage. A Redis outage is likewise a
// degradation: requests are admitted under the fallback policy.
func (g *Gateway) Readiness(ctx context.Context) (ready bool, r Readiness) {
	r = Readiness{Status: "ok", ShuttingDown: !g.ready.Load(), Config: "loaded", Store: "ok", Quota: "ok", Spool: "ok",
		CachedKeys: g.keys.knowsKeys()}
	if g.router.Load() == nil {
		r.Config = "not_loaded"
	}
	if !g.quotaOK() {
		r.Quota = "fallback"
	}
	if g.spool == nil {
		r.Spool = "unknown"
	} else {
		sp := g.spool()
		r.SpoolBytes, r.SpoolMaxBytes = sp.Bytes, sp.Max
		switch {
		case !sp.Enabled:
			r.Spool = "disabled"
		case sp.Full:
			r.Spool = "full"
		}
	}
	pctx, cancel := context.WithTimeout(ctx, readyPingTimeout)
	defer cancel()
	if err := g.store.Ping(pctx); err != nil {
		r.Store = "down"
	}
	storeDown := r.Store == "down"
	switch {
	case r.ShuttingDown:
		r.Status, r.Reason = "draining", "shutting_down"
	case r.Config != "loaded":
		r.Status, r.Reason = "unavailable", "config_not_loaded"
	case storeDown && r.Spool == "full":
		r.Status, r.Reason = "unavailable", "store_down_spool_full"
	case storeDown && r.Spool == "disabled":
		r.Status, r.Reason = "unavailable", "store_down_no_spool"
	case storeDown && !r.CachedKeys:
		r.Status, r.Reason = "unavailable", "store_down_no_cached_keys"
	case storeDown || r.Quota != "ok" || r.Spool == "full":
		r.Status = "degraded"
	}
	return r.Reason == "", r
}

// handleReady answers Readiness: 200 while ready, 503 when not, with the report as the body.
func (g *Gateway) handleReady(c *gin.Context) {
	ok, r := g.Readiness(c.Request.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, r)
}
