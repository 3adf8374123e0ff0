package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// The checks both implementations apply before writing, so they reject the same inputs.

// ValidCreditSubject checks a credit account's subject: charges look accounts up by a record's
// user, then its tenant, so those are the only subjects an account can have.
func ValidCreditSubject(subjectType, subjectID string) error {
	if subjectType != "user" && subjectType != "tenant" {
		return fmt.Errorf("credit account subject type %q: want \"user\" or \"tenant\"", subjectType)
	}
	if subjectID == "" {
		return fmt.Errorf("credit account of a %s without an id", subjectType)
	}
	return nil
}

// ValidCredit checks an AddCredit entry: charges are written only by InsertUsage, keyed by
// request id, so AddCredit takes the other kinds; grants and refunds add money, an adjustment
// may take it away.
func ValidCredit(kind string, amount *big.Int) error {
	if amount == nil {
		return errors.New("credit without an amount")
	}
	switch kind {
	case "grant", "refund":
		if amount.Sign() <= 0 {
			return fmt.Errorf("a %s must be positive, got %s", kind, amount)
		}
	case "adjust":
		if amount.Sign() == 0 {
			return errors.New("an adjustment of zero")
		}
	case "charge":
		return errors.New("charges are written by InsertUsage, keyed by request id")
	default:
		return fmt.Errorf("unknown credit kind %q: want grant, refund or adjust", kind)
	}
	return nil
}

// ValidPrice rejects what no caller may store: a version without a model or a time, or a
// negative price (a refund is a credit entry, not a price).
func ValidPrice(p ModelPrice) error {
	switch {
	case p.Model == "":
		return errors.New("price without a model")
	case p.EffectiveFrom.IsZero():
		return fmt.Errorf("price of %q without an effective time", p.Model)
	case p.InputPerM < 0 || p.OutputPerM < 0 || p.CachedInputPerM < 0 || p.ReasoningPerM < 0 || p.CacheWritePerM < 0,
		p.AudioSecond < 0 || p.CharactersPerM < 0 || p.Request < 0:
		return fmt.Errorf("price of %q is negative", p.Model)
	}
	for k, v := range p.ImagePrices {
		if k == "" || v < 0 {
			return fmt.Errorf("price of %q: image price %q is empty or negative", p.Model, k)
		}
	}
	return nil
}

// SpendColumn is the billing_record column that identifies a subject of a SpendFilter; the
// subject type never reaches SQL text otherwise.
func SpendColumn(subjectType string) (string, error) {
	switch subjectType {
	case "user":
		return "user_id", nil
	case "key":
		return "key_id", nil
	case "tenant":
		return "tenant_id", nil
	}
	return "", fmt.Errorf("subject type %q: want user, key or tenant", subjectType)
}

// EscapeLike escapes LIKE's wildcards (and the escape character itself, '\') so a filter value
// matches itself literally; both stores write `LIKE ? ESCAPE '\'`.
func EscapeLike(s string) string {
	if !strings.ContainsAny(s, `%_\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for _, r := range s {
		if r == '%' || r == '_' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ValidRole checks an admin token role.
func ValidRole(role string) error {
	switch role {
	case RoleAdmin, RoleViewer, RoleBilling:
		return nil
	}
	return fmt.Errorf("role %q: want admin, viewer or billing", role)
}

// ValidDeploymentOverride rejects an override without a deployment or with a weight outside
// 0…2³¹−1 (PostgreSQL's integer column; SQLite checks the same range so both agree).
func ValidDeploymentOverride(o DeploymentOverride) error {
	if o.DeploymentID == "" {
		return errors.New("deployment override without a deployment id")
	}
	if o.Weight != nil && (*o.Weight < 0 || *o.Weight > math.MaxInt32) {
		return fmt.Errorf("deployment override of %q: weight %d outside 0…%d", o.DeploymentID, *o.Weight, math.MaxInt32)
	}
	return nil
}

// ValidAuditEntry rejects an admin audit entry whose Before or After is not a JSON document
// (PostgreSQL's jsonb would refuse it; SQLite, which keeps text, checks the same).
func ValidAuditEntry(e AdminAuditEntry) error {
	switch {
	case len(e.Before) > 0 && !json.Valid(e.Before):
		return fmt.Errorf("admin audit entry %s: before is not JSON", e.Action)
	case len(e.After) > 0 && !json.Valid(e.After):
		return fmt.Errorf("admin audit entry %s: after is not JSON", e.Action)
	}
	return nil
}

// ValidCatalogEntry rejects an entry of an unknown kind, without a name, or whose spec is not a
// JSON object.
func ValidCatalogEntry(e CatalogEntry) error {
	if e.Kind != CatalogProvider && e.Kind != CatalogModel {
		return fmt.Errorf("catalog entry kind %q: want provider or model", e.Kind)
	}
	if e.Name == "" {
		return fmt.Errorf("catalog %s without a name", e.Kind)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Spec, &obj); err != nil || obj == nil {
		return fmt.Errorf("catalog %s %q: spec is not a JSON object", e.Kind, e.Name)
	}
	return nil
}

// ValidExperiment checks what the store requires of an experiment: an id, a model, a known state
// and a spec that is a JSON object.
func ValidExperiment(e Experiment) error {
	if e.ID == "" || e.Model == "" {
		return fmt.Errorf("experiment %q: id and model are required", e.ID)
	}
	switch e.State {
	case ExperimentDraft, ExperimentRunning, ExperimentPaused, ExperimentStopped:
	default:
		return fmt.Errorf("experiment %q: state %q: want draft, running, paused or stopped", e.ID, e.State)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Spec, &obj); err != nil || obj == nil {
		return fmt.Errorf("experiment %q: spec is not a JSON object", e.ID)
	}
	return nil
}
