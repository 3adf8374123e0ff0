package billing

import (
	"fmt"
	"sync"
	"testing"
)

func TestPricerLookup(t *testing.T) {
	p := NewPricer()
	if _, ok := p.Lookup("gpt-4o"); ok {
		t.Fatal("empty pricer priced a model")
	}
	p.Set([]Price{
		{Model: "gpt-4o", InputPerM: 2_500_000},
		{Model: "gpt-4o-mini", InputPerM: 150_000},
		{Model: "gpt-4", InputPerM: 30_000_000},
		{Model: "claude-sonnet-4-5", InputPerM: 3_000_000},
		{Model: "claude-opus-5", InputPerM: 5_000_000},
		{Model: "gemini-2.5-flash", InputPerM: 300_000},
		{Model: "gemini-1.5-pro", InputPerM: 1_250_000},
		{Model: "qwen-max", InputPerM: 2_400_000},
	})
	if p.Len() != 8 {
		t.Fatalf("Len = %d", p.Len())
	}
	for _, c := range []struct {
		model, want string // want "" = no price
	}{
		// exact, case-insensitive
		{"gpt-4o", "gpt-4o"},
		{"GPT-4o", "gpt-4o"},
		{"gpt-4o-mini", "gpt-4o-mini"},
		// dated snapshots fall back to their base model
		{"gpt-4o-2024-08-06", "gpt-4o"},
		{"gpt-4o-mini-2024-07-18", "gpt-4o-mini"}, // the longest priced prefix wins
		{"gpt-4-0613", "gpt-4"},
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"gemini-1.5-pro-002", "gemini-1.5-pro"},
		{"qwen-max-0919", "qwen-max"},
		{"qwen-max-latest", "qwen-max"},
		{"Claude-Sonnet-4-5-20250929", "claude-sonnet-4-5"},
		// Vertex AI writes the version after an '@'
		{"claude-sonnet-4-5@20250929", "claude-sonnet-4-5"},
		{"claude-opus-5@latest", "claude-opus-5"},
		{"claude-opus-5-5@20260101", ""},
		{"claude-sonnet-4-5@preview", ""},
		// variants are different models: no borrowed price
		{"gpt-4o-audio-preview", ""},
		{"gpt-4o-realtime-preview-2024-12-17", ""},
		{"gpt-4-turbo", ""},
		{"gpt-4-turbo-2024-04-09", ""},
		{"gemini-2.5-flash-lite", ""},
		{"gemini-2.5-flash-preview-05-20", ""},
		{"claude-opus-5-5", ""}, // not claude-opus-5 with a suffix "5"
		{"claude-opus-5-1-20260101", ""},
		{"gpt-4o-2024-8-6", ""}, // not a date
		{"gpt-4o-", ""},
		{"-2024-08-06", ""},
		{"gpt", ""},
		{"", ""},
		{"unknown-model", ""},
	} {
		got, ok := p.Lookup(c.model)
		if ok != (c.want != "") || got.Model != c.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", c.model, got.Model, ok, c.want)
		}
	}

	// Set replaces everything.
	p.Set([]Price{{Model: "other", InputPerM: 1}})
	if _, ok := p.Lookup("gpt-4o"); ok {
		t.Error("Set did not replace the table")
	}
	if pr, ok := p.Lookup("other"); !ok || pr.InputPerM != 1 {
		t.Error("new table not in force")
	}
}

// Lookups race with Set under -race; each lookup sees one whole table or the other.
func TestPricerConcurrent(t *testing.T) {
	p := NewPricer()
	tables := [2][]Price{
		{{Model: "a", InputPerM: 1, Version: "v1"}, {Model: "b", InputPerM: 1, Version: "v1"}},
		{{Model: "a", InputPerM: 2, Version: "v2"}, {Model: "b", InputPerM: 2, Version: "v2"}},
	}
	p.Set(tables[0])
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, okA := p.Lookup("a-2025-01-01")
				b, okB := p.Lookup("b")
				if !okA || !okB || a.InputPerM != int64(a.Version[1]-'0') || b.InputPerM != int64(b.Version[1]-'0') {
					errs <- fmt.Errorf("bad lookup %+v %+v", a, b)
					return
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		p.Set(tables[i%2])
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkPricerLookup(b *testing.B) {
	prices, err := LoadPricingFile(shippedPricing)
	if err != nil {
		b.Fatal(err)
	}
	p := NewPricer()
	p.Set(prices)
	b.Run("exact", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p.Lookup("gpt-5.4-mini")
		}
	})
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p.Lookup("gpt-4o-2024-08-06")
		}
	})
}
