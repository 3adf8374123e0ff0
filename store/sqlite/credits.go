package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/llmgate/llmgate/store"
)

const accountColumns = `id, subject_type, subject_id, balance_pico_usd, charged_pico_usd, created_at,
	updated_at`

// EnsureCreditAccount returns the subject's account, creating it with a zero balance. The insert
// and the read share one IMMEDIATE transaction on the writer, so callers racing to create one
// account (goroutines or processes sharing the file) take turns and all get the same one.
func (s *Store) EnsureCreditAccount(ctx context.Context, subjectType, subjectID string) (store.CreditAccount, error) {
	if err := store.ValidCreditSubject(subjectType, subjectID); err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: ensure credit account: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: ensure credit account: %w", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: ensure credit account: %w", err)
	}
	defer tx.Rollback()
	now := micros(time.Now())
	if _, err := tx.ExecContext(ctx, `INSERT INTO credit_accounts
		(id, subject_type, subject_id, balance_pico_usd, created_at, updated_at)
		VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (subject_type, subject_id) DO NOTHING`,
		"ca_"+id.String(), subjectType, subjectID, now, now); err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: ensure credit account: %w", err)
	}
	a, err := scanAccount(tx.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM credit_accounts
		WHERE subject_type = ? AND subject_id = ?`, subjectType, subjectID))
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: ensure credit account: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: ensure credit account: %w", err)
	}
	return a, nil
}

// CreditAccountOf returns the subject's account; ErrNotFound when it has none.
func (s *Store) CreditAccountOf(ctx context.Context, subjectType, subjectID string) (store.CreditAccount, error) {
	a, err := scanAccount(s.r.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM credit_accounts
		WHERE subject_type = ? AND subject_id = ?`, subjectType, subjectID))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("sqlite: credit account of %s %q: %w", subjectType, subjectID, err)
	}
	return a, nil
}

// ListCreditAccounts lists accounts; a tenant filter keeps the tenant's account and its users'.
func (s *Store) ListCreditAccounts(ctx context.Context, f store.CreditAccountFilter) ([]store.CreditAccount, error) {
	limit, offset := page(f.Limit, f.Offset)
	rows, err := s.r.QueryContext(ctx, `SELECT `+qualified("a.", accountColumns)+` FROM credit_accounts a
		LEFT JOIN users u ON a.subject_type = 'user' AND u.id = a.subject_id
		WHERE (? = '' OR a.subject_type = ?)
		AND (? = '' OR (a.subject_type = 'tenant' AND a.subject_id = ?) OR (a.subject_type = 'user' AND u.tenant_id = ?))
		ORDER BY a.subject_type, a.subject_id LIMIT ? OFFSET ?`,
		f.SubjectType, f.SubjectType, f.TenantID, f.TenantID, f.TenantID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list credit accounts: %w", err)
	}
	defer rows.Close()
	var out []store.CreditAccount
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list credit accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list credit accounts: %w", err)
	}
	return out, nil
}

// qualified prefixes each column of a comma-separated list with a table alias.
func qualified(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// AddCredit moves the balance and appends the entry in one transaction. The amount and the new
// balance must fit the embedded store's int64 pico-USD (errMoneyRange otherwise, nothing written).
func (s *Store) AddCredit(ctx context.Context, accountID, kind string, amount *big.Int, note string) (store.CreditEntry, error) {
	if err := store.ValidCredit(kind, amount); err != nil {
		return store.CreditEntry{}, fmt.Errorf("sqlite: add credit: %w", err)
	}
	if !amount.IsInt64() {
		return store.CreditEntry{}, fmt.Errorf("sqlite: add credit of %s: %w", amount, errMoneyRange)
	}
	e := store.CreditEntry{AccountID: accountID, Kind: kind, AmountPicoUSD: new(big.Int).Set(amount),
		Note: note, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	err := func() error {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		now := micros(e.CreatedAt)
		if err := moveBalance(ctx, tx, accountID, amount.Int64(), false, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO credit_ledger
			(account_id, kind, amount_pico_usd, note, created_at) VALUES (?, ?, ?, ?, ?)`,
			accountID, kind, amount.Int64(), note, now)
		if err != nil {
			return err
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return store.CreditEntry{}, fmt.Errorf("sqlite: add credit to %q: %w", accountID, err)
	}
	return e, nil
}

// CreditEntries returns an account's ledger newest first (ties in created_at broken by the later
// id); an unknown account has none.
func (s *Store) CreditEntries(ctx context.Context, accountID string, limit, offset int) ([]store.CreditEntry, error) {
	return s.CreditHistory(ctx, accountID, time.Time{}, limit, offset)
}

// CreditHistory returns an account's ledger from since on, newest first.
func (s *Store) CreditHistory(ctx context.Context, accountID string, since time.Time, limit, offset int) ([]store.CreditEntry, error) {
	limit, offset = page(limit, offset)
	rows, err := s.r.QueryContext(ctx, `SELECT id, account_id, kind, amount_pico_usd,
		COALESCE(request_id, ''), note, created_at FROM credit_ledger WHERE account_id = ? AND created_at >= ?
		ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, accountID, sinceMicros(since), limit, offset)
	if err != nil {
		return nil, fmt.Errorf("sqlite: credit entries: %w", err)
	}
	defer rows.Close()
	var out []store.CreditEntry
	for rows.Next() {
		var e store.CreditEntry
		var created int64
		if err := rows.Scan(&e.ID, &e.AccountID, &e.Kind, scanMoney(&e.AmountPicoUSD),
			&e.RequestID, &e.Note, &created); err != nil {
			return nil, fmt.Errorf("sqlite: credit entries: %w", err)
		}
		e.CreatedAt = fromMicros(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: credit entries: %w", err)
	}
	return out, nil
}

func scanAccount(row interface{ Scan(...any) error }) (store.CreditAccount, error) {
	var a store.CreditAccount
	var created, updated int64
	if err := row.Scan(&a.ID, &a.SubjectType, &a.SubjectID, scanMoney(&a.BalancePicoUSD),
		scanMoney(&a.ChargedPicoUSD), &created, &updated); err != nil {
		return store.CreditAccount{}, err
	}
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	return a, nil
}

// CreditTotals sums an account's ledger from since on, by kind. SQLite's sum() of integers
// fails rather than lose precision when it overflows.
func (s *Store) CreditTotals(ctx context.Context, accountID string, since time.Time) ([]store.CreditTotal, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, count(*), sum(amount_pico_usd) FROM credit_ledger
		WHERE account_id = ? AND created_at >= ? GROUP BY kind ORDER BY kind`, accountID, sinceMicros(since))
	if err != nil {
		return nil, fmt.Errorf("sqlite: credit totals: %w", err)
	}
	defer rows.Close()
	var out []store.CreditTotal
	for rows.Next() {
		var t store.CreditTotal
		if err := rows.Scan(&t.Kind, &t.Entries, scanMoney(&t.AmountPicoUSD)); err != nil {
			return nil, fmt.Errorf("sqlite: credit totals: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: credit totals: %w", err)
	}
	return out, nil
}

// sinceMicros is the lower bound of a span "since" in the stored unit (zero: no bound).
func sinceMicros(since time.Time) int64 {
	if since.IsZero() {
		return math.MinInt64
	}
	return since.UnixMicro()
}
