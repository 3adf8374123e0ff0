package store

import (
	"errors"
	"fmt"
	"math/big"
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
	case p.InputPerM < 0 || p.OutputPerM < 0 || p.CachedInputPerM < 0 || p.ReasoningPerM < 0:
		return fmt.Errorf("price of %q is negative", p.Model)
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
