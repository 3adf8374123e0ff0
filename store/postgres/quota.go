package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// PutQuotaPolicy inserts or replaces the policy of (SubjectType, SubjectID, Model) in one
// statement, atomic against concurrent writers of the same policy. An empty Model is stored as
// NULL, so "every model" has one representation; a nil limit is stored as NULL (inherit).
// UpdatedAt is set to the current time whatever p carries.
func (s *Store) PutQuotaPolicy(ctx context.Context, p store.QuotaPolicy) error {
	// The conflict target is the unique index's own expression, COALESCE(model, ''): NULL never
	// equals NULL, so a plain (subject_type, subject_id, model) could not match the every-model row.
	_, err := s.pool.Exec(ctx, `INSERT INTO quota_policies
		(subject_type, subject_id, model, rpm, tpm, tokens_per_day, concurrent,
			budget_day_micro_usd, budget_month_micro_usd, updated_at)
		VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (subject_type, subject_id, COALESCE(model, '')) DO UPDATE SET
			rpm = EXCLUDED.rpm, tpm = EXCLUDED.tpm, tokens_per_day = EXCLUDED.tokens_per_day,
			concurrent = EXCLUDED.concurrent, budget_day_micro_usd = EXCLUDED.budget_day_micro_usd,
			budget_month_micro_usd = EXCLUDED.budget_month_micro_usd, updated_at = EXCLUDED.updated_at`,
		p.SubjectType, p.SubjectID, p.Model, p.RPM, p.TPM, p.TokensPerDay, p.Concurrent,
		p.BudgetDayMicroUSD, p.BudgetMonthMicroUSD, time.Now())
	if err != nil {
		return fmt.Errorf("postgres: put quota policy: %w", mapErr(err))
	}
	return nil
}

// quotaPolicyColumns reads a NULL model back as "" (every model).
const quotaPolicyColumns = `subject_type, subject_id, COALESCE(model, ''), rpm, tpm,
	tokens_per_day, concurrent, budget_day_micro_usd, budget_month_micro_usd, updated_at`

// QuotaPolicies returns the policies of one subject, or of every subject when subjectType is
// empty, ordered by subject type, subject id and model in byte order (COLLATE "C", the same as
// Go's string comparison and SQLite's, whatever the database's collation); a subject's
// every-model policy ("") comes first.
func (s *Store) QuotaPolicies(ctx context.Context, subjectType, subjectID string) ([]store.QuotaPolicy, error) {
	var w where
	if subjectType != "" {
		w.add("subject_type = ", subjectType)
		w.add("subject_id = ", subjectID)
	}
	q := `SELECT ` + quotaPolicyColumns + ` FROM quota_policies` + w.sql() +
		` ORDER BY subject_type COLLATE "C", subject_id COLLATE "C", COALESCE(model, '') COLLATE "C"`
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: quota policies: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.QuotaPolicy, error) {
		var p store.QuotaPolicy
		err := row.Scan(&p.SubjectType, &p.SubjectID, &p.Model, &p.RPM, &p.TPM, &p.TokensPerDay,
			&p.Concurrent, &p.BudgetDayMicroUSD, &p.BudgetMonthMicroUSD, &p.UpdatedAt)
		p.UpdatedAt = p.UpdatedAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: quota policies: %w", err)
	}
	return ps, nil
}

// DeleteQuotaPolicy removes the policy of (subjectType, subjectID, model), model "" being the
// every-model policy; ErrNotFound when there is none.
func (s *Store) DeleteQuotaPolicy(ctx context.Context, subjectType, subjectID, model string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM quota_policies
		WHERE subject_type = $1 AND subject_id = $2 AND COALESCE(model, '') = $3`,
		subjectType, subjectID, model)
	if err != nil {
		return fmt.Errorf("postgres: delete quota policy: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete quota policy (%q, %q, %q): %w",
			subjectType, subjectID, model, store.ErrNotFound)
	}
	return nil
}
