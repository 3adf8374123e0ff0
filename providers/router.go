package providers

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// ModelConfig is one entry of the config file's `models` list: a public model name and the
// deployments that can serve it.
type ModelConfig struct {
	Name        string             `yaml:"name"`
	Deployments []DeploymentConfig `yaml:"deployments"`
}

// DeploymentConfig is one way to serve a public model: a provider and its model name there.
type DeploymentConfig struct {
	// ID names the deployment in metrics and usage records (default "provider/model").
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	Model    string `yaml:"model"`
	// Weight is the share of traffic among deployments of the same priority (default 1).
	Weight int `yaml:"weight"`
	// Priority orders groups: lower first; a higher group is tried only after every lower one
	// failed.
	Priority int `yaml:"priority"`
}

// Deployment is a resolved DeploymentConfig.
type Deployment struct {
	ID           string
	ProviderName string
	Model        string
	Weight       int
	Priority     int
	Provider     Provider
}

// Router maps public model names to deployments. It is immutable once built: a reload builds a
// new Router, so requests in flight keep the one they started with.
type Router struct {
	models map[string][]*Deployment // sorted by priority
	names  []string
}

// NewRouter resolves the model list against the built providers.
func NewRouter(models []ModelConfig, provs map[string]Provider) (*Router, error) {
	r := &Router{models: make(map[string][]*Deployment, len(models))}
	for i, m := range models {
		if m.Name == "" {
			return nil, fmt.Errorf("models[%d].name: must not be empty", i)
		}
		if _, dup := r.models[m.Name]; dup {
			return nil, fmt.Errorf("models[%d].name: %q is listed twice", i, m.Name)
		}
		if len(m.Deployments) == 0 {
			return nil, fmt.Errorf("models[%d] (%s).deployments: needs at least one deployment", i, m.Name)
		}
		deps := make([]*Deployment, 0, len(m.Deployments))
		for j, d := range m.Deployments {
			p, ok := provs[d.Provider]
			if !ok {
				return nil, fmt.Errorf("models[%d] (%s).deployments[%d].provider: no provider named %q", i, m.Name, j, d.Provider)
			}
			if d.Model == "" {
				d.Model = m.Name
			}
			if d.Weight < 0 {
				return nil, fmt.Errorf("models[%d] (%s).deployments[%d].weight: must not be negative", i, m.Name, j)
			}
			if d.Weight == 0 {
				d.Weight = 1
			}
			if d.ID == "" {
				d.ID = d.Provider + "/" + d.Model
			}
			deps = append(deps, &Deployment{ID: d.ID, ProviderName: d.Provider, Model: d.Model,
				Weight: d.Weight, Priority: d.Priority, Provider: p})
		}
		sort.SliceStable(deps, func(a, b int) bool { return deps[a].Priority < deps[b].Priority })
		r.models[m.Name] = deps
		r.names = append(r.names, m.Name)
	}
	return r, nil
}

// Models lists the public model names in config order.
func (r *Router) Models() []string { return r.names }

// Has reports whether a public model exists.
func (r *Router) Has(model string) bool { _, ok := r.models[model]; return ok }

// Candidates returns the deployments to try for a model, in order: priority groups lowest first,
// and within a group a weighted random order. It returns nil for an unknown model.
func (r *Router) Candidates(model string) []*Deployment {
	deps := r.models[model]
	if len(deps) <= 1 {
		return deps
	}
	out := make([]*Deployment, 0, len(deps))
	for start := 0; start < len(deps); {
		end := start
		for end < len(deps) && deps[end].Priority == deps[start].Priority {
			end++
		}
		out = appendWeighted(out, deps[start:end])
		start = end
	}
	return out
}

// appendWeighted appends group in weighted random order (draw without replacement).
func appendWeighted(out, group []*Deployment) []*Deployment {
	rest := append([]*Deployment(nil), group...)
	for len(rest) > 0 {
		total := 0
		for _, d := range rest {
			total += d.Weight
		}
		n := rand.IntN(total)
		i := 0
		for ; n >= rest[i].Weight; i++ {
			n -= rest[i].Weight
		}
		out = append(out, rest[i])
		rest = append(rest[:i], rest[i+1:]...)
	}
	return out
}
