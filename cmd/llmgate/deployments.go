package main

import (
	"context"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/store"
)

// Deployment overrides: admin changes to deployments (enable, disable, weight) live in the store,
// keyed by deployment id, and are merged over the config file whenever the routing table is built:
// at start, at each file reload, and when an override changes. A change made on one replica is
// applied there at once and reaches the others through the change bus (changes.Deployments).

// overridesTimeout bounds reading the overrides from the store.
const overridesTimeout = 2 * time.Second

// loadOverrides reads every override from the store, by deployment id.
func loadOverrides(ctx context.Context, st store.Store) (map[string]store.DeploymentOverride, error) {
	ctx, cancel := context.WithTimeout(ctx, overridesTimeout)
	defer cancel()
	list, err := st.DeploymentOverrides(ctx)
	if err != nil {
		return nil, fmt.Errorf("deployment overrides: %w", err)
	}
	out := make(map[string]store.DeploymentOverride, len(list))
	for _, o := range list {
		out[o.DeploymentID] = o
	}
	return out, nil
}

// routingOverrides turns stored overrides into the router's.
func routingOverrides(m map[string]store.DeploymentOverride) map[string]providers.Override {
	out := make(map[string]providers.Override, len(m))
	for id, o := range m {
		out[id] = providers.Override{Enabled: o.Enabled, Weight: o.Weight, UpdatedBy: o.UpdatedBy, UpdatedAt: o.UpdatedAt}
	}
	return out
}

// sameOverrides reports whether two sets of overrides are equal, field by field.
func sameOverrides(a, b map[string]store.DeploymentOverride) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		y, ok := b[id]
		if !ok || !samePtr(x.Enabled, y.Enabled) || !samePtr(x.Weight, y.Weight) ||
			x.UpdatedBy != y.UpdatedBy || !x.UpdatedAt.Equal(y.UpdatedAt) {
			return false
		}
	}
	return true
}

func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// refreshOverrides reloads the overrides from the store and, when they changed, rebuilds the
// routing table from the running configuration with them. The change bus calls it for every
// change announced, and without Redis every second: when nothing changed, nothing is rebuilt.
func (a *app) refreshOverrides(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	ovs, err := loadOverrides(ctx, a.store)
	if err != nil {
		return err
	}
	if sameOverrides(a.overrides, ovs) {
		return nil
	}
	t, err := buildTable(a.cfg, a.catalog, ovs, a.current(), true, a.log)
	if err != nil { // the running configuration built a table before; overrides cannot break it
		return err
	}
	a.swap(t)
	a.overrides = ovs
	a.log.Info("deployment overrides applied", "overrides", len(ovs))
	return nil
}

// deploymentControl is the admin API's handle on the running deployments.
type deploymentControl struct {
	gw      *gateway.Gateway
	changes *changes.Bus
}

var _ admin.DeploymentControl = deploymentControl{}

// Deployments lists the deployments of the routing table in use, with their health.
func (c deploymentControl) Deployments() []providers.DeploymentState { return c.gw.Deployments() }

// OverridesChanged applies the stored overrides here and announces the change to the others.
func (c deploymentControl) OverridesChanged(ctx context.Context, deploymentID string) error {
	return c.changes.Announce(ctx, changes.Deployments, deploymentID)
}
