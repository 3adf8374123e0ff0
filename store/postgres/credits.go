package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/llmgate/llmgate/store"
)

const accountColumns = `id, subject_type, subject_id, balance_pico_usd, charged_pico_usd, created_at,
	updated_at`

// EnsureCreditAccount returns the subject's account, creating it with a zero balance. Callers
// racing to create one account all get the same one: the insert skips on the (subject_type,
// subject_id) unique constraint, waiting for a concurrent inserter to commit first, and the read
// that follows is a new statement, so it sees that committed row.
func (s *Store) EnsureCreditAccount(ctx context.Context, subjectType, subjectID string) (store.CreditAccount, error) {
	if err := store.ValidCreditSubject(subjectType, subjectID); err != nil {
		return store.CreditAccount{}, fmt.Errorf("postgres: ensure credit account: %w", err)
	}
	id, err := newAccountID()
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("postgres: ensure credit account: %w", err)
	}
	a, err := scanAccount(s.pool.QueryRow(ctx, `INSERT INTO credit_accounts (id, subject_type, subject_id)
		VALUES ($1, $2, $3) ON CONFLICT (subject_type, subject_id) DO NOTHING
		RETURNING `+accountColumns, id, subjectType, subjectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.CreditAccountOf(ctx, subjectType, subjectID)
	}
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("postgres: ensure credit account: %w", err)
	}
	return a, nil
}

// CreditAccountOf returns the subject's account; ErrNotFound when it has none.
func (s *Store) CreditAccountOf(ctx context.Context, subjectType, subjectID string) (store.CreditAccount, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM credit_accounts
		WHERE subject_type = $1 AND subject_id = $2`, subjectType, subjectID))
	if err != nil {
		return store.CreditAccount{}, fmt.Errorf("postgres: credit account of %s %q: %w",
			subjectType, subjectID, notFound(err))
	}
	return a, nil
}

// ListCreditAccounts lists accounts; a tenant filter keeps the tenant's account and its users'.
func (s *Store) ListCreditAccounts(ctx context.Context, f store.CreditAccountFilter) ([]store.CreditAccount, error) {
	limit, offset := page(f.Limit, f.Offset)
	cols := strings.Split(accountColumns, ",")
	for i, c := range cols {
		cols[i] = "a." + strings.TrimSpace(c)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM credit_accounts a
		LEFT JOIN users u ON a.subject_type = 'user' AND u.id = a.subject_id
		WHERE ($1 = '' OR a.subject_type = $1)
		AND ($2 = '' OR (a.subject_type = 'tenant' AND a.subject_id = $2) OR (a.subject_type = 'user' AND u.tenant_id = $2))
		ORDER BY a.subject_type, a.subject_id LIMIT $3 OFFSET $4`, f.SubjectType, f.TenantID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("postgres: list credit accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CreditAccount, error) { return scanAccount(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list credit accounts: %w", err)
	}
	return out, nil
}

// AddCredit moves the balance and appends the entry in one statement (so one transaction): the
// ledger insert reads the account id from the UPDATE's RETURNING, so an unknown account writes
// nothing and reports ErrNotFound. The UPDATE's row lock serialises it with charges and other
// credits of the same account.
func (s *Store) AddCredit(ctx context.Context, accountID, kind string, amount *big.Int, note string) (store.CreditEntry, error) {
	if err := store.ValidCredit(kind, amount); err != nil {
		return store.CreditEntry{}, fmt.Errorf("postgres: add credit: %w", err)
	}
	e := store.CreditEntry{AccountID: accountID, Kind: kind, AmountPicoUSD: new(big.Int).Set(amount), Note: note}
	err := s.pool.QueryRow(ctx, `WITH a AS (
			UPDATE credit_accounts SET balance_pico_usd = balance_pico_usd + $3, updated_at = now()
			WHERE id = $1 RETURNING id
		)
		INSERT INTO credit_ledger (account_id, kind, amount_pico_usd, note)
		SELECT id, $2, $3, $4 FROM a RETURNING id, created_at`,
		accountID, kind, bigToNumeric(amount), note).Scan(&e.ID, &e.CreatedAt)
	if err != nil {
		return store.CreditEntry{}, fmt.Errorf("postgres: add credit to %q: %w", accountID, notFound(err))
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return e, nil
}

// CreditEntries returns an account's ledger newest first (ties in created_at, which is the time
// of the writing transaction, broken by the later id); an unknown account has none.
func (s *Store) CreditEntries(ctx context.Context, accountID string, limit, offset int) ([]store.CreditEntry, error) {
	return s.CreditHistory(ctx, accountID, time.Time{}, limit, offset)
}

// CreditHistory returns an account's ledger from since on, newest first, in one range scan of
// the (account_id, created_at) index.
func (s *Store) CreditHistory(ctx context.Context, accountID string, since time.Time, limit, offset int) ([]store.CreditEntry, error) {
	limit, offset = page(limit, offset)
	rows, err := s.pool.Query(ctx, `SELECT id, account_id, kind, amount_pico_usd,
		COALESCE(request_id, ''), note, created_at FROM credit_ledger WHERE account_id = $1 AND created_at >= $4
		ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, accountID, limit, offset, sinceOrEpoch(since))
	if err != nil {
		return nil, fmt.Errorf("postgres: credit entries: %w", err)
	}
	es, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CreditEntry, error) {
		var e store.CreditEntry
		var amount pgtype.Numeric
		if err := row.Scan(&e.ID, &e.AccountID, &e.Kind, &amount, &e.RequestID, &e.Note, &e.CreatedAt); err != nil {
			return e, err
		}
		e.CreatedAt = e.CreatedAt.UTC()
		var err error
		e.AmountPicoUSD, err = numericToBig(amount)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: credit entries: %w", err)
	}
	return es, nil
}

func scanAccount(row pgx.Row) (store.CreditAccount, error) {
	var a store.CreditAccount
	var balance, charged pgtype.Numeric
	if err := row.Scan(&a.ID, &a.SubjectType, &a.SubjectID, &balance, &charged, &a.CreatedAt,
		&a.UpdatedAt); err != nil {
		return store.CreditAccount{}, err
	}
	var err error
	if a.BalancePicoUSD, err = numericToBig(balance); err != nil {
		return store.CreditAccount{}, err
	}
	if a.ChargedPicoUSD, err = numericToBig(charged); err != nil {
		return store.CreditAccount{}, err
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// newAccountID is "ca_" and a UUIDv7: unique across replicas without a round trip, and roughly
// time-ordered, so the primary key index grows at its end.
func newAccountID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("account id: %w", err)
	}
	return "ca_" + id.String(), nil
}

// CreditTotals sums an account's ledger from since on, by kind.
func (s *Store) CreditTotals(ctx context.Context, accountID string, since time.Time) ([]store.CreditTotal, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, count(*), sum(amount_pico_usd) FROM credit_ledger
		WHERE account_id = $1 AND created_at >= $2 GROUP BY kind ORDER BY kind`, accountID, sinceOrEpoch(since))
	if err != nil {
		return nil, fmt.Errorf("postgres: credit totals: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CreditTotal, error) {
		var t store.CreditTotal
		var sum pgtype.Numeric
		if err := row.Scan(&t.Kind, &t.Entries, &sum); err != nil {
			return t, err
		}
		var err error
		t.AmountPicoUSD, err = numericToBig(sum)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: credit totals: %w", err)
	}
	return ts, nil
}

// sinceOrEpoch is the lower bound of a span "since" (zero: no bound).
func sinceOrEpoch(since time.Time) time.Time {
	if since.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return since.UTC()
}
