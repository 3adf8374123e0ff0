package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/llmgate/llmgate/store"
)

// BenchmarkInsertUsage measures the usage writer's cost per record in 1000-record batches (the
// recorder's default), the SQLite half of the gateway's per-request CPU. Records are unpriced and
// uncharged, as before rollups existed, so the numbers compare across versions.
func BenchmarkInsertUsage(b *testing.B) { benchInsertUsage(b, false) }

// BenchmarkInsertUsageCharged is the same with every record priced and charged to one of 20 user
// accounts, over 4 models: each batch also upserts its rollup rows, appends 1000 ledger entries
// and moves 20 balances.
func BenchmarkInsertUsageCharged(b *testing.B) { benchInsertUsage(b, true) }

func benchInsertUsage(b *testing.B, charged bool) {
	ctx := context.Background()
	s := openMigrated(b)
	if charged {
		for u := range 20 {
			if _, err := s.EnsureCreditAccount(ctx, "user", fmt.Sprintf("u%d", u)); err != nil {
				b.Fatal(err)
			}
		}
	}
	const batch = 1000
	recs := make([]store.UsageRecord, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		now := time.Now()
		for j := range recs {
			id, _ := uuid.NewV7()
			recs[j] = store.UsageRecord{RequestID: id.String(), TraceID: uuid.NewString(), KeyID: "key_1", UserID: "u1",
				TenantID: store.DefaultTenant, Model: "gpt-4o-mini", UpstreamModel: "gpt-4o-mini", Provider: "openai",
				Deployment: "openai/gpt-4o-mini", Endpoint: "chat/completions", Status: 200, PromptTokens: 12,
				CompletionTokens: 20, UsageSource: "provider", LatencyMS: 3, StartedAt: now, EndedAt: now}
			if charged {
				r := &recs[j]
				r.UserID = fmt.Sprintf("u%d", j%20)
				r.Model = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-flash"}[j/20%4]
				cost := int64(1_234_567 + j)
				r.CostPicoUSD, r.Charge = &cost, true
				r.PayerType, r.PayerID = "user", r.UserID
			}
		}
		// The usage writer bounds every batch with a deadline, as here.
		bctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := s.InsertUsage(bctx, recs)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutResponseRoutes measures recording response routes as the gateway's route writer
// does under load: batches of 4 routes (what it gathered per commit under the bench's Responses
// streams), random response ids, into a table that already holds 50,000 routes.
func BenchmarkPutResponseRoutes(b *testing.B) {
	ctx := context.Background()
	s := openMigrated(b)
	now := time.Now()
	id := make([]byte, 24) // a response id of 48 random hex digits, as OpenAI's
	route := func() store.ResponseRoute {
		rand.Read(id)
		return store.ResponseRoute{ResponseID: "resp_" + hex.EncodeToString(id),
			TenantID: store.DefaultTenant, KeyID: "key_1", Model: "gpt-4o-mini", DeploymentID: "openai-main", Provider: "openai",
			CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
	}
	fill := make([]store.ResponseRoute, 1000)
	for range 50 {
		for j := range fill {
			fill[j] = route()
		}
		if err := s.PutResponseRoutes(ctx, fill); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 4
	rs := make([]store.ResponseRoute, b.N+batch)
	for j := range rs {
		rs[j] = route()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if err := s.PutResponseRoutes(ctx, rs[i:i+batch]); err != nil {
			b.Fatal(err)
		}
	}
}
