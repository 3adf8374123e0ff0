package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/llmgate/llmgate/store"
)

// Money in the embedded store is SQLite INTEGER, that is int64 pico-USD: a billing_record row's
// cost, an account's balance or its total of charges holds up to about ±$9.2M. That is
// acceptable for the embedded default (one machine, one day of one user, key and model per
// rollup row), and it stays exact: a sum beyond the range fails its write with errMoneyRange
// instead of wrapping or turning into a REAL (moneyErr). The total of charges only grows, so an
// account charged more than $9.2M in all refuses further charges (and the batches holding them).
// PostgreSQL keeps these sums in NUMERIC and has no such bound.
var errMoneyRange = errors.New("money beyond the embedded store's int64 pico-USD range (±$9.2M per rollup row, balance or total of charges)")

// usageBatch collects, while InsertUsage inserts a batch, what its new records add to the daily
// rollups and the credit balances, and writes that in the same transaction before the commit.
//
// Rollups are summed in Go and upserted once per (day, tenant, user, key, model) rather than once
// per record: a batch of a thousand records from a few users costs a few upserts, not a thousand,
// and the result is the same since nothing else writes in between (one writer, one transaction).
// Charges are appended one ledger row per record, as they must be (each is keyed by its request
// id), and the balances moved once per account at the end.
type usageBatch struct {
	tx  *sql.Tx
	now int64 // created_at of the batch's ledger entries and updated_at of its accounts

	rollups map[rollupKey]*rollupSum
	lastDay struct { // day of the previous record: a batch's records mostly share one
		num int64
		str string
	}

	accounts map[subject]string // account of a subject, "" when it has none; one lookup per batch
	charged  map[string]int64   // account id → sum of the charges appended, negative
	lookup   *sql.Stmt          // prepared on the first charge, so batches without any skip it
	charge   *sql.Stmt
}

// rollupKey names a billing_record row: records with a cost and records without one (unpriced)
// sum into separate rows of the same group.
type rollupKey struct {
	day, tenant, user, key, model string
	priced                        bool
}

type rollupSum struct {
	requests, prompt, completion, cached, reasoning, cacheWrite, cost int64
}

type subject struct{ typ, id string }

func newUsageBatch(tx *sql.Tx) *usageBatch {
	b := &usageBatch{tx: tx, now: micros(time.Now()), rollups: map[rollupKey]*rollupSum{}}
	b.lastDay.num = math.MinInt64
	return b
}

// add counts a record that was new into its rollup (when it reached a model) and, when it is to
// be charged and has a cost, appends its charge.
func (b *usageBatch) add(ctx context.Context, r *store.UsageRecord) error {
	if r.ReachedModel() {
		if err := b.rollup(r); err != nil {
			return err
		}
	}
	if r.Charge && r.CostPicoUSD != nil {
		return b.chargeRecord(ctx, r)
	}
	return nil
}

// rollup adds a record to the sums of its (day, tenant, user, key, model) group.
func (b *usageBatch) rollup(r *store.UsageRecord) error {
	k := rollupKey{b.day(r.StartedAt), r.TenantID, r.UserID, r.KeyID, r.Model, r.CostPicoUSD != nil}
	sum := b.rollups[k]
	if sum == nil {
		sum = &rollupSum{}
		b.rollups[k] = sum
	}
	sum.requests++
	tokensOK := true
	for _, t := range [...]struct {
		sum *int64
		n   int64
	}{{&sum.prompt, r.PromptTokens}, {&sum.completion, r.CompletionTokens},
		{&sum.cached, r.CachedTokens}, {&sum.reasoning, r.ReasoningTokens},
		{&sum.cacheWrite, r.CacheWriteTokens}} {
		var ok bool
		*t.sum, ok = addInt64(*t.sum, t.n)
		tokensOK = tokensOK && ok
	}
	if !tokensOK {
		return fmt.Errorf("rollup of %v: token counts beyond int64", k)
	}
	if r.CostPicoUSD != nil {
		var ok bool
		if sum.cost, ok = addInt64(sum.cost, *r.CostPicoUSD); !ok {
			return fmt.Errorf("rollup of %v: %w", k, errMoneyRange)
		}
	}
	return nil
}

// day is the record's UTC day as billing_record stores it, 'YYYY-MM-DD'.
func (b *usageBatch) day(t time.Time) string {
	const microsPerDay = 24 * 60 * 60 * 1_000_000
	us := t.UnixMicro()
	n := us / microsPerDay
	if us%microsPerDay < 0 { // before 1970: round down, not toward zero
		n--
	}
	if n != b.lastDay.num {
		b.lastDay.num, b.lastDay.str = n, t.UTC().Format(time.DateOnly)
	}
	return b.lastDay.str
}

// chargeRecord appends the record's charge to the account of the payer it names (none: no charge).
// The ledger's partial unique index on request_id makes a charge that exists a no-op (a request
// recorded again under another started_at is charged once); only appended charges move the
// balance.
func (b *usageBatch) chargeRecord(ctx context.Context, r *store.UsageRecord) error {
	if r.PayerType == "" {
		return nil
	}
	acct, err := b.accountOf(ctx, subject{r.PayerType, r.PayerID})
	if err != nil || acct == "" {
		return err
	}
	cost := *r.CostPicoUSD
	if cost == math.MinInt64 {
		return fmt.Errorf("charge of %d pico-USD: %w", cost, errMoneyRange)
	}
	if b.charge == nil {
		if b.charge, err = b.tx.PrepareContext(ctx, `INSERT INTO credit_ledger
			(account_id, kind, amount_pico_usd, request_id, created_at) VALUES (?, 'charge', ?, ?, ?)
			ON CONFLICT (request_id) WHERE kind = 'charge' DO NOTHING`); err != nil {
			return fmt.Errorf("prepare charge: %w", err)
		}
	}
	res, err := b.charge.ExecContext(ctx, acct, -cost, r.RequestID, b.now)
	if err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	if b.charged == nil {
		b.charged = map[string]int64{}
	}
	total, ok := addInt64(b.charged[acct], -cost)
	if !ok {
		return fmt.Errorf("charges to account %s: %w", acct, errMoneyRange)
	}
	b.charged[acct] = total
	return nil
}

// accountOf returns a subject's credit account id ("" when it has none).
func (b *usageBatch) accountOf(ctx context.Context, sub subject) (string, error) {
	if id, ok := b.accounts[sub]; ok {
		return id, nil
	}
	if b.lookup == nil {
		var err error
		if b.lookup, err = b.tx.PrepareContext(ctx,
			`SELECT id FROM credit_accounts WHERE subject_type = ? AND subject_id = ?`); err != nil {
			return "", fmt.Errorf("prepare account lookup: %w", err)
		}
		b.accounts = map[subject]string{}
	}
	var id string
	if err := b.lookup.QueryRowContext(ctx, sub.typ, sub.id).Scan(&id); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("credit account of %s %q: %w", sub.typ, sub.id, err)
	}
	b.accounts[sub] = id
	return id, nil
}

// flush writes the rollups and the balances of the batch, in key order so the writes (and any
// error) do not depend on map order.
func (b *usageBatch) flush(ctx context.Context) error {
	if len(b.rollups) > 0 {
		stmt, err := b.tx.PrepareContext(ctx, upsertRollupSQL)
		if err != nil {
			return fmt.Errorf("prepare rollup: %w", err)
		}
		defer stmt.Close()
		keys := make([]rollupKey, 0, len(b.rollups))
		for k := range b.rollups {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y rollupKey) int {
			return cmp.Or(cmp.Compare(x.day, y.day), cmp.Compare(x.tenant, y.tenant),
				cmp.Compare(x.user, y.user), cmp.Compare(x.key, y.key), cmp.Compare(x.model, y.model),
				cmp.Compare(b2i(y.priced), b2i(x.priced)))
		})
		for _, k := range keys {
			v := b.rollups[k]
			if _, err := stmt.ExecContext(ctx, k.day, k.tenant, k.user, k.key, k.model, b2i(k.priced),
				v.requests, v.prompt, v.completion, v.cached, v.reasoning, v.cost, v.cacheWrite); err != nil {
				return fmt.Errorf("rollup of %v: %w", k, moneyErr(err))
			}
		}
	}
	accts := make([]string, 0, len(b.charged))
	for id := range b.charged {
		accts = append(accts, id)
	}
	slices.Sort(accts)
	for _, id := range accts {
		if err := moveBalance(ctx, b.tx, id, b.charged[id], true, b.now); err != nil {
			return fmt.Errorf("balance of %s: %w", id, err)
		}
	}
	return nil
}

func (b *usageBatch) close() {
	for _, st := range []*sql.Stmt{b.lookup, b.charge} {
		if st != nil {
			st.Close()
		}
	}
}

// upsertRollupSQL adds one group's sums to its billing_record row. A sum that overflows int64
// becomes a REAL in SQLite, which the STRICT integer column refuses (see moneyErr): the write
// fails, it never wraps or rounds. An unpriced row's cost stays 0 and is read as none.
const upsertRollupSQL = `INSERT INTO billing_record (day, tenant_id, user_id, key_id, model, priced,
	requests, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_pico_usd,
	cache_write_tokens)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (day, tenant_id, user_id, key_id, model, priced) DO UPDATE SET
		requests = requests + excluded.requests,
		prompt_tokens = prompt_tokens + excluded.prompt_tokens,
		completion_tokens = completion_tokens + excluded.completion_tokens,
		cached_tokens = cached_tokens + excluded.cached_tokens,
		reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
		cost_pico_usd = cost_pico_usd + excluded.cost_pico_usd,
		cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens`

// moveBalance adds delta to an account's balance, exactly or not at all (an overflow fails as a
// rollup's does); for charges (delta ≤ 0) it also raises the running total of charges by −delta.
// ErrNotFound when the account does not exist.
func moveBalance(ctx context.Context, tx *sql.Tx, accountID string, delta int64, charge bool, now int64) error {
	var charged int64
	if charge {
		if delta == math.MinInt64 { // −delta is not an int64
			return errMoneyRange
		}
		charged = -delta
	}
	res, err := tx.ExecContext(ctx, `UPDATE credit_accounts
		SET balance_pico_usd = balance_pico_usd + ?, charged_pico_usd = charged_pico_usd + ?,
		updated_at = ? WHERE id = ?`, delta, charged, now, accountID)
	if err != nil {
		return moneyErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// moneyErr names the failure of an int64 money sum: SQLite computes an integer sum that
// overflows as a REAL, and a STRICT INTEGER column refuses a REAL it cannot hold exactly, even
// −2⁶³ (TestMoneyExactAtInt64Min). The money statements bind no REAL, so that refusal is always
// an overflow.
func moneyErr(err error) error {
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_DATATYPE {
		return fmt.Errorf("%w: %w", errMoneyRange, err)
	}
	return err
}

// b2i is SQLite's integer for a boolean.
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// addInt64 returns a+b and whether it did not overflow.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (s > a) == (b > 0)
}
