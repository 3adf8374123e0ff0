package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/llmgate/llmgate/store"
)

// BenchmarkInsertUsage measures the usage writer's cost per record in 1000-record batches (the
// recorder's default), the SQLite half of the gateway's per-request CPU.
func BenchmarkInsertUsage(b *testing.B) {
	ctx := context.Background()
	s, err := New(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
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
		}
		if _, err := s.InsertUsage(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}
