package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/llmgate/llmgate/store"
)

// PutQuotaPolicy inserts or replaces the policy of (SubjectType, SubjectID, Model) in one
// statement. An empty Model is stored as NULL, so "every model" has one representation; a nil
// limit is stored as NULL (inherit). UpdatedAt is set to the current time whatever p carries.
func (s *Store) PutQuotaPolicy(ctx context.Context, p store.QuotaPolicy) error {
	// The conflict target is the unique index's own expression, COALESCE(model, ''): NULL never
	// equals NULL, so a plain (subject_type, subject_id, model) could not match the every-model row.
	_, err := s.w.ExecContext(ctx, `INSERT INTO quota_policies
		(subject_type, subject_id, model, rpm, tpm, tokens_per_day, concurrent,
			budget_day_micro_usd, budget_month_micro_usd, updated_at)
		VALUES (?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subject_type, subject_id, COALESCE(model, '')) DO UPDATE SET
			rpm = excluded.rpm, tpm = excluded.tpm, tokens_per_day = excluded.tokens_per_day,
			concurrent = excluded.concurrent, budget_day_micro_usd = excluded.budget_day_micro_usd,
			budget_month_micro_usd = excluded.budget_month_micro_usd, updated_at = excluded.updated_at`,
		p.SubjectType, p.SubjectID, p.Model, nullInt64(p.RPM), nullInt64(p.TPM),
		nullInt64(p.TokensPerDay), nullInt64(p.Concurrent), nullInt64(p.BudgetDayMicroUSD),
		nullInt64(p.BudgetMonthMicroUSD), micros(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: put quota policy: %w", mapErr(err))
	}
	return nil
}

// quotaPolicyColumns reads a NULL model back as "" (every model).
const quotaPolicyColumns = `subject_type, subject_id, COALESCE(model, ''), rpm, tpm,
	tokens_per_day, concurrent, budget_day_micro_usd, budget_month_micro_usd, updated_at`

// QuotaPolicies returns the policies of one subject, or of every subject when subjectType is
// empty, ordered by subject type, subject id and model in byte order (SQLite's BINARY collation,
// the same as Go's string comparison); a subject's every-model policy ("") comes first.
func (s *Store) QuotaPolicies(ctx context.Context, subjectType, subjectID string) ([]store.QuotaPolicy, error) {
	q := `SELECT ` + quotaPolicyColumns + ` FROM quota_policies`
	var args []any
	if subjectType != "" {
		q += ` WHERE subject_type = ? AND subject_id = ?`
		args = append(args, subjectType, subjectID)
	}
	q += ` ORDER BY subject_type, subject_id, COALESCE(model, '')`
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: quota policies: %w", err)
	}
	defer rows.Close()
	var out []store.QuotaPolicy
	for rows.Next() {
		var p store.QuotaPolicy
		var rpm, tpm, perDay, concurrent, budgetDay, budgetMonth sql.NullInt64
		var updated int64
		if err := rows.Scan(&p.SubjectType, &p.SubjectID, &p.Model, &rpm, &tpm, &perDay,
			&concurrent, &budgetDay, &budgetMonth, &updated); err != nil {
			return nil, fmt.Errorf("sqlite: quota policies: %w", err)
		}
		p.RPM, p.TPM, p.TokensPerDay, p.Concurrent = fromNullInt64(rpm), fromNullInt64(tpm),
			fromNullInt64(perDay), fromNullInt64(concurrent)
		p.BudgetDayMicroUSD, p.BudgetMonthMicroUSD = fromNullInt64(budgetDay), fromNullInt64(budgetMonth)
		p.UpdatedAt = fromMicros(updated)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: quota policies: %w", err)
	}
	return out, nil
}

// DeleteQuotaPolicy removes the policy of (subjectType, subjectID, model), model "" being the
// every-model policy; ErrNotFound when there is none.
func (s *Store) DeleteQuotaPolicy(ctx context.Context, subjectType, subjectID, model string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM quota_policies
		WHERE subject_type = ? AND subject_id = ? AND COALESCE(model, '') = ?`,
		subjectType, subjectID, model)
	if err != nil {
		return fmt.Errorf("sqlite: delete quota policy: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: delete quota policy: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete quota policy (%q, %q, %q): %w",
			subjectType, subjectID, model, store.ErrNotFound)
	}
	return nil
}

// nullInt64 stores a nil limit as NULL.
func nullInt64(v *int64) sql.NullInt64 {
	if v == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *v, Valid: true}
}

// fromNullInt64 reads NULL back as nil, keeping 0 distinct from it.
func fromNullInt64(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}
