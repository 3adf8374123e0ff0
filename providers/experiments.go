package providers

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// A/B experiments: a running experiment on a public model splits that model's traffic between
// variants, each another public model or one deployment, by weight. A caller is assigned by a
// hash of the experiment's salt and its user id (its key id when the key has no user), so the
// same caller always lands on the same variant while the experiment runs, on every replica,
// without any state kept per caller; another salt shuffles the callers anew. The admin API
// stores experiments; the running gateway holds the running ones as an Experiments table, which
// it swaps whole when one changes.

// Experiment is a running experiment as routing needs it.
type Experiment struct {
	ID    string
	Model string // the public model whose requests it splits
	Salt  string
	// Variants share the traffic by weight (each at least 1).
	Variants []Variant
	// ExcludeKeys and ExcludeTenants are kept out: their requests go to Model as if there were no
	// experiment, and are not recorded as part of it.
	ExcludeKeys    []string
	ExcludeTenants []string
}

// Variant is one arm of an experiment: a public model, optionally narrowed to one of its
// deployments.
type Variant struct {
	Name       string
	Model      string
	Deployment string // "" : any deployment of Model, as its routing orders them
	Weight     int
}

// Assignment is the variant a request was given.
type Assignment struct {
	Experiment string
	Variant    string
	Model      string
	Deployment string
}

// Experiments is the table of running experiments, by model. It is immutable: the gateway swaps
// in a new one when an experiment changes. A nil table assigns nothing.
type Experiments struct {
	byModel map[string]*running
}

type running struct {
	Experiment
	total    uint64
	excluded map[string]bool // "k:<key id>" and "t:<tenant id>"
}

// NewExperiments builds the table of running experiments. Experiments with no variant or no
// positive weight are left out; when two name the same model, the first is kept.
func NewExperiments(list []Experiment) *Experiments {
	t := &Experiments{byModel: make(map[string]*running, len(list))}
	for _, e := range list {
		if _, dup := t.byModel[e.Model]; dup {
			continue
		}
		r := &running{Experiment: e, excluded: map[string]bool{}}
		r.Variants = slices.Clone(e.Variants)
		for _, v := range r.Variants {
			if v.Weight > 0 {
				r.total += uint64(v.Weight)
			}
		}
		if r.total == 0 {
			continue
		}
		for _, k := range e.ExcludeKeys {
			r.excluded["k:"+k] = true
		}
		for _, tn := range e.ExcludeTenants {
			r.excluded["t:"+tn] = true
		}
		t.byModel[e.Model] = r
	}
	return t
}

// Len is the number of running experiments.
func (t *Experiments) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byModel)
}

// Assign gives a request for model its variant of the experiment running on it; ok is false
// when none runs there or the key or tenant is kept out.
func (t *Experiments) Assign(model, tenantID, keyID, userID string) (a Assignment, ok bool) {
	if t == nil || len(t.byModel) == 0 {
		return Assignment{}, false
	}
	r := t.byModel[model]
	if r == nil || r.excluded["k:"+keyID] || r.excluded["t:"+tenantID] {
		return Assignment{}, false
	}
	subject := "user:" + userID
	if userID == "" {
		subject = "key:" + keyID
	}
	// SHA-256 spreads any salt and id evenly over 64 bits; the modulo's bias for weights summing
	// to at most a few million is below 1e-12.
	h := sha256.New()
	h.Write([]byte(r.Salt))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	var sum [sha256.Size]byte
	point := binary.BigEndian.Uint64(h.Sum(sum[:0])) % r.total
	for _, v := range r.Variants {
		if v.Weight <= 0 {
			continue
		}
		if point < uint64(v.Weight) {
			return Assignment{Experiment: r.ID, Variant: v.Name, Model: v.Model, Deployment: v.Deployment}, true
		}
		point -= uint64(v.Weight)
	}
	return Assignment{}, false // not reached: the weights sum to total
}
