package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/store"
)

// A/B experiments: the running ones are read from the store at start and whenever one changes
// (announced on the change bus, changes.Experiments, or found by the bus's poll), and put in use
// as a whole table (gateway.SetExperiments). The request path only reads the table.

// loadExperiments reads the running experiments from the store as a table.
func loadExperiments(ctx context.Context, st store.Store) (*providers.Experiments, error) {
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	all, err := st.Experiments(ctx)
	if err != nil {
		return nil, fmt.Errorf("experiments: %w", err)
	}
	var running []providers.Experiment
	for _, e := range all {
		if e.State != store.ExperimentRunning {
			continue
		}
		x, err := admin.DecodeExperiment(e)
		if err != nil {
			return nil, fmt.Errorf("experiment %q: %w", e.ID, err)
		}
		running = append(running, x)
	}
	return providers.NewExperiments(running), nil
}

// refreshExperiments puts the stored running experiments in use.
func (a *app) refreshExperiments(ctx context.Context) error {
	t, err := loadExperiments(ctx, a.store)
	if err != nil {
		return err
	}
	a.gateway.SetExperiments(t)
	return nil
}

// experimentControl is the admin API's handle on the experiments of the running gateway.
type experimentControl struct {
	a       *app
	changes *changes.Bus
}

var _ admin.ExperimentControl = experimentControl{}

// HasModel reports whether the routing table in use has the model.
func (c experimentControl) HasModel(model string) bool { return c.a.gateway.Router().Has(model) }

// HasDeployment reports whether the deployment is one of the model's in the table in use.
func (c experimentControl) HasDeployment(model, id string) bool {
	return slices.ContainsFunc(c.a.gateway.Router().Deployments(model), func(d *providers.Deployment) bool { return d.ID == id })
}

// ExperimentsChanged applies the stored experiments here and announces the change to the others.
func (c experimentControl) ExperimentsChanged(ctx context.Context) error {
	return c.changes.Announce(ctx, changes.Experiments, "")
}
