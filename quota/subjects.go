package quota

import (
	"strconv"

	"github.com/llmgate/llmgate/store"
)

// PolicyLookup finds a subject's policy for a model ("" for the model-less one) without I/O:
// *PolicyBook is one (a nil book finds nothing).
type PolicyLookup interface {
	Lookup(kind Kind, subjectID, model string) (store.QuotaPolicy, bool)
}

// Holder is who an API key belongs to, as admission counts it.
type Holder struct {
	KeyID, UserID, TenantID string
	// Tier is the user's tier ("" for a key without a user).
	Tier string
}

// RateDims are the rate dimensions in the order Origin.Policy numbers them.
var RateDims = [...]string{DimRPM, DimTPM, DimTokensPerDay, DimConcurrent}

// Why the default tier applies to a subject that never chose it (Origin.Default).
const (
	DefaultNoUser      = "key has no user"
	DefaultUnknownTier = "the user's tier is not configured"
)

// Origin says where a subject's limits come from, dimension by dimension, to explain them (the
// admin API's effective limits, the warning logged for a refusal); limiters ignore it.
type Origin struct {
	// Tier is the tier the subject's limits start from ("" for none: unlimited).
	Tier string
	// Default, when set, says why Tier is the default tier although the subject never chose it
	// (DefaultNoUser, DefaultUnknownTier).
	Default string
	// Policy has bit 1<<i set for each dimension RateDims[i] the subject's own policy sets.
	Policy uint8
}

// FromPolicy reports whether the subject's own policy sets the dimension.
func (o Origin) FromPolicy(dim string) bool {
	for i, d := range RateDims {
		if d == dim {
			return o.Policy&(1<<i) != 0
		}
	}
	return false
}

// Unchosen reports whether the subject's limit on dim is the default tier's, which nobody chose
// for it: no policy sets it and the subject has no tier of its own (a key without a user).
func (o Origin) Unchosen(dim string) bool { return o.Default != "" && !o.FromPolicy(dim) }

// policyBits numbers the rate limits a policy sets, as Origin.Policy.
func policyBits(p store.QuotaPolicy) uint8 {
	var bits uint8
	for i, v := range [...]*int64{p.RPM, p.TPM, p.TokensPerDay, p.Concurrent} {
		if v != nil {
			bits |= 1 << i
		}
	}
	return bits
}

// SubjectsOf lists what a request of the holder's key counts against, each with its limits and
// their origin:
//   - its user, with the user's tier limits overridden by the user's policy (a key without a user
//     is its own subject instead, with the default tier's limits);
//   - its key, when the key has a policy of its own;
//   - its tenant, when the tenant has a policy or is the payer (the subject type whose credit
//     account pays for the request; "" for none);
//   - its session (non-empty session), with the configured session limits;
//   - for each of those with a policy for the requested model, that narrower subject too.
//
// The gateway admits with it and the admin API explains a key's limits with it (Effective), so
// the two cannot disagree. o must have its defaults (WithDefaults).
func (o Options) SubjectsOf(book PolicyLookup, h Holder, model, session string, payer Kind) []Subject {
	out := make([]Subject, 0, 4)
	add := func(kind Kind, id string, base Limits, origin Origin, always bool) {
		p, ok := book.Lookup(kind, id, "")
		if ok {
			base = ApplyPolicy(base, p)
			origin.Policy = policyBits(p)
		}
		if ok || always || payer == kind {
			out = append(out, Subject{Kind: kind, ID: id, Tenant: h.TenantID, Limits: base, Origin: origin})
		}
		if mp, ok := book.Lookup(kind, id, model); ok && model != "" {
			out = append(out, Subject{Kind: kind, ID: id, Tenant: h.TenantID, Model: model,
				Limits: ApplyPolicy(Limits{}, mp), Origin: Origin{Policy: policyBits(mp)}})
		}
	}
	if h.UserID != "" {
		tier, why := h.Tier, ""
		if _, ok := o.Tiers[tier]; !ok {
			tier, why = o.DefaultTier, DefaultUnknownTier
		}
		add(KindUser, h.UserID, o.TierLimits(tier), Origin{Tier: tier, Default: why}, true)
		add(KindKey, h.KeyID, Limits{}, Origin{}, false)
	} else {
		add(KindKey, h.KeyID, o.TierLimits(""), Origin{Tier: o.DefaultTier, Default: DefaultNoUser}, true)
	}
	add(KindTenant, h.TenantID, Limits{}, Origin{}, false)
	if session != "" {
		out = append(out, Subject{Kind: KindSession, ID: session, Tenant: h.TenantID, Limits: o.Session})
	}
	return out
}

// Limit is one dimension's effective limit and where it comes from.
type Limit struct {
	// Value is the limit (micro-USD for budgets); 0 means unlimited.
	Value int64
	// Source names what sets it: "policy:key/<id>" (the key's own limits), "policy:user/<id>",
	// "policy:tenant/<id>", "tier:<name> (user <id>)", "tier:<name> (default tier: <why>)", or
	// "none".
	Source string
}

// Effective is the tightest limit of each rate dimension (RateDims) and budget (DimBudgetDay,
// DimBudgetMonth) among the model-less subjects of one key (SubjectsOf without a model or
// session), with its source: the most the key may use when nothing else draws on the subjects it
// shares (its user, its tenant). Model-specific policies and session limits can narrow it
// further for the requests they cover. book supplies the budgets, as admission's.
func Effective(book PolicyLookup, subjects []Subject) map[string]Limit {
	out := make(map[string]Limit, len(RateDims)+2)
	pick := func(dim string, v int64, source func() string) {
		cur, seen := out[dim]
		switch {
		case !seen || (cur.Value == 0 && cur.Source == "none"):
			out[dim] = Limit{Value: v, Source: source()}
		case v > 0 && (cur.Value == 0 || v < cur.Value):
			out[dim] = Limit{Value: v, Source: source()}
		}
	}
	for _, s := range subjects {
		if s.Model != "" || s.Kind == KindSession {
			continue
		}
		for i, dim := range RateDims {
			v := [...]int64{s.Limits.RPM, s.Limits.TPM, s.Limits.TokensPerDay, s.Limits.Concurrent}[i]
			pick(dim, v, func() string { return s.sourceOf(dim) })
		}
		p, ok := book.Lookup(s.Kind, s.ID, "")
		for dim, b := range map[string]*int64{DimBudgetDay: p.BudgetDayMicroUSD, DimBudgetMonth: p.BudgetMonthMicroUSD} {
			if ok && b != nil {
				pick(dim, *b, func() string { return "policy:" + string(s.Kind) + "/" + s.ID })
			} else {
				pick(dim, 0, func() string { return "none" })
			}
		}
	}
	return out
}

// sourceOf names what sets a subject's limit on a rate dimension.
func (s Subject) sourceOf(dim string) string {
	switch {
	case s.Origin.FromPolicy(dim):
		return "policy:" + string(s.Kind) + "/" + s.ID
	case s.Origin.Tier == "":
		return "none"
	case s.Origin.Default != "":
		why := s.Origin.Default
		if why == DefaultUnknownTier {
			why = "the tier of user " + strconv.Quote(s.ID) + " is not configured"
		}
		return "tier:" + s.Origin.Tier + " (default tier: " + why + ")"
	}
	return "tier:" + s.Origin.Tier + " (user " + s.ID + ")"
}
