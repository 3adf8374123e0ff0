package billing_test

import (
	"context"
	"errors"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.New(ctx, filepath.Join(t.TempDir(), "billing.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func account(t *testing.T, st store.Store, typ, id string) store.CreditAccount {
	t.Helper()
	a, err := st.EnsureCreditAccount(context.Background(), typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func balance(t *testing.T, st store.Store, a store.CreditAccount) *big.Int {
	t.Helper()
	got, err := st.CreditAccountOf(context.Background(), a.SubjectType, a.SubjectID)
	if err != nil {
		t.Fatal(err)
	}
	return got.BalancePicoUSD
}

// TestLedgerNamesMissingPayers: a record to be charged that names no payer (spooled by an older
// version, or admitted while the guard could not read the ledger) is charged to its user's
// account, else to its tenant's, else to nobody; a record not to be charged, or without a cost,
// is charged nothing; a record that names its payer is charged to that account.
func TestLedgerNamesMissingPayers(t *testing.T) {
	st := openStore(t)
	payer := account(t, st, "user", "payer")
	acme := account(t, st, "tenant", "acme")
	def := account(t, st, "tenant", store.DefaultTenant)
	at := time.Date(2026, 4, 15, 10, 0, 0, 0, time.UTC)
	cost := func(v int64) *int64 { return &v }
	rec := func(id, tenant, user string, c *int64, charge bool) store.UsageRecord {
		return store.UsageRecord{RequestID: id, TenantID: tenant, UserID: user, KeyID: "k", Model: "m",
			Status: 200, UsageSource: "provider", CostPicoUSD: c, Charge: charge, StartedAt: at, EndedAt: at}
	}
	named := rec("r7", "acme", "payer", cost(7000), true)
	named.PayerType, named.PayerID = "tenant", store.DefaultTenant
	recs := []store.UsageRecord{
		rec("r1", "acme", "payer", cost(100), true),
		rec("r2", "acme", "guest", cost(200), true),
		rec("r3", "lonely", "guest2", cost(300), true),
		rec("r4", "acme", "payer", cost(400), false),
		rec("r5", "acme", "payer", nil, true),
		rec("r6", "acme", "", cost(600), true),
		named,
	}
	l := billing.NewLedger(st, st)
	if n, err := l.InsertUsage(context.Background(), recs); err != nil || n != len(recs) {
		t.Fatalf("InsertUsage = %d, %v", n, err)
	}
	for _, r := range recs[:6] {
		if r.PayerType != "" {
			t.Errorf("the caller's record %s was changed: payer %s", r.RequestID, r.PayerType)
		}
	}
	for _, c := range []struct {
		a    store.CreditAccount
		want int64
	}{{payer, -100}, {acme, -200 - 600}, {def, -7000}} {
		if got := balance(t, st, c.a); got.Cmp(big.NewInt(c.want)) != 0 {
			t.Errorf("%s %s balance %v, want %d", c.a.SubjectType, c.a.SubjectID, got, c.want)
		}
	}
}

// failingReader cannot read the ledger.
type failingReader struct{ store.Store }

func (failingReader) CreditAccountOf(context.Context, string, string) (store.CreditAccount, error) {
	return store.CreditAccount{}, errors.New("ledger away")
}

// TestLedgerFailsWhenPayerUnknown: when the payer of a record cannot be read, nothing is written,
// so the batch is kept and written again later.
func TestLedgerFailsWhenPayerUnknown(t *testing.T) {
	st := openStore(t)
	c := int64(5)
	at := time.Date(2026, 4, 15, 10, 0, 0, 0, time.UTC)
	recs := []store.UsageRecord{{RequestID: "r", TenantID: "acme", UserID: "u", CostPicoUSD: &c, Charge: true, StartedAt: at, EndedAt: at}}
	if _, err := billing.NewLedger(st, failingReader{st}).InsertUsage(context.Background(), recs); err == nil {
		t.Fatal("InsertUsage with an unreadable payer: no error")
	}
	if got, err := st.ListUsage(context.Background(), store.UsageFilter{}); err != nil || len(got) != 0 {
		t.Errorf("%d records written (%v), want none", len(got), err)
	}
}

// TestPayerMark: a known payer is named in the record, nobody's account means no charge, and an
// unknown payer leaves the record for the ledger to decide.
func TestPayerMark(t *testing.T) {
	for name, c := range map[string]struct {
		p          billing.Payer
		charge     bool
		typ, id    string
		wantCharge bool
	}{
		"user pays":        {billing.Payer{Known: true, Kind: quota.KindUser, ID: "u"}, true, "user", "u", true},
		"tenant pays":      {billing.Payer{Known: true, Kind: quota.KindTenant, ID: "t"}, true, "tenant", "t", true},
		"nobody has one":   {billing.Payer{Known: true}, true, "", "", false},
		"unknown":          {billing.Payer{}, true, "", "", true},
		"exempt by policy": {billing.Payer{Known: true, Kind: quota.KindUser, ID: "u"}, false, "user", "u", false},
	} {
		t.Run(name, func(t *testing.T) {
			r := store.UsageRecord{Charge: c.charge}
			c.p.Mark(&r)
			if r.PayerType != c.typ || r.PayerID != c.id || r.Charge != c.wantCharge {
				t.Errorf("record payer %q %q charge %v, want %q %q %v", r.PayerType, r.PayerID, r.Charge, c.typ, c.id, c.wantCharge)
			}
		})
	}
}
