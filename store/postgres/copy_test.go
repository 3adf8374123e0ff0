package postgres

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/store"
)

// TestUsageCopyMatchesPgx: the binary COPY stream appendUsageCopy writes holds what pgx.CopyFrom
// would have sent for the same records, extremes included: both, COPYed into two tables, read
// back the same rows.
func TestUsageCopyMatchesPgx(t *testing.T) {
	if len(usageInColumns) != 36 {
		t.Fatalf("usageInColumns has %d columns; appendUsageCopy writes 36", len(usageInColumns))
	}
	ctx := context.Background()
	s := open(t, pg.NewDatabase(t))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("X", -(9*3600 + 30*60))
	recs := []store.UsageRecord{
		{RequestID: "r1", StartedAt: time.Date(2026, 4, 15, 10, 0, 0, 123456789, zone),
			EndedAt: time.Date(2026, 4, 15, 10, 0, 1, 999, time.UTC)},
		{RequestID: "r2 ünïcødé ✓ ' \\ %", ClientRequestID: "c", TraceID: strings.Repeat("t", 10_000),
			KeyID: "k", UserID: "u", TenantID: "acme", SessionID: "s", Model: "m", UpstreamModel: "um",
			Provider: "p", Deployment: "d", Endpoint: "e", Stream: true, Status: 599, ErrorType: "x",
			PromptTokens: math.MaxInt64, CompletionTokens: math.MinInt64, CachedTokens: -1,
			ReasoningTokens: 1, UsageSource: "partial", CostPicoUSD: ptr(int64(math.MaxInt64)),
			PriceVersion: "v", LatencyMS: math.MinInt64, TTFTMS: math.MaxInt64, Units: math.MaxInt64, Unit: "image ✓", ServedModel: "fallback ✓", Experiment: "exp ✓", Variant: "v ✓", CacheWriteTokens: math.MinInt64, Charge: true, PayerType: "user", PayerID: "u ✓",
			StartedAt: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
			EndedAt:   time.Date(1999, 12, 31, 23, 59, 59, 1500, zone)},
		{RequestID: "r3", Status: -1, CostPicoUSD: ptr(int64(math.MinInt64)),
			StartedAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), EndedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{RequestID: "r4", CostPicoUSD: ptr(int64(0)), StartedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			EndedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)},
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createUsageInSQL); err != nil {
			return err
		}
		if err := copyUsage(ctx, tx, recs); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE usage_pgx (LIKE usage_in) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_pgx"}, usageInColumns,
			pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
				r := &recs[i]
				return []any{
					r.RequestID, r.ClientRequestID, r.TraceID, r.KeyID, r.UserID, r.TenantID,
					r.SessionID, r.Model, r.UpstreamModel, r.Provider, r.Deployment, r.Endpoint,
					r.Stream, int32(r.Status), r.ErrorType, r.PromptTokens, r.CompletionTokens,
					r.CachedTokens, r.ReasoningTokens, r.UsageSource, r.CostPicoUSD, r.PriceVersion,
					r.LatencyMS, r.TTFTMS, r.StartedAt, r.EndedAt, r.Units, r.Unit, r.ServedModel, r.ReplayOf, r.Experiment, r.Variant, r.CacheWriteTokens,
					r.Charge, r.PayerType, r.PayerID,
				}, nil
			})); err != nil {
			return err
		}
		var rows, onlyOurs, onlyPgx int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM usage_in),
			(SELECT count(*) FROM (TABLE usage_in EXCEPT ALL TABLE usage_pgx) d),
			(SELECT count(*) FROM (TABLE usage_pgx EXCEPT ALL TABLE usage_in) d)`).Scan(&rows, &onlyOurs, &onlyPgx); err != nil {
			return err
		}
		if rows != len(recs) || onlyOurs != 0 || onlyPgx != 0 {
			t.Errorf("%d rows COPYed, %d only in ours, %d only in pgx's; want %d, 0, 0", rows, onlyOurs, onlyPgx, len(recs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
