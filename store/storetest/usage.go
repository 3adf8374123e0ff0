package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// t0 is in the middle of a month so records an hour apart stay in one monthly partition, and in a
// zone other than UTC so stores must compare instants, not wall clocks.
var t0 = time.Date(2026, 4, 15, 10, 0, 0, 123456789, time.FixedZone("IST", 5*3600+1800))

// usageRec returns a record of request i, started i minutes after t0.
func usageRec(i int) store.UsageRecord {
	start := t0.Add(time.Duration(i) * time.Minute)
	return store.UsageRecord{
		RequestID: fmt.Sprintf("req-%05d", i), KeyID: "k1", UserID: "u1", TenantID: store.DefaultTenant,
		Model: "gpt-4o", Endpoint: "chat/completions", Status: 200, PromptTokens: int64(i),
		UsageSource: "provider", StartedAt: start, EndedAt: start.Add(time.Second),
	}
}

func usageRecs(from, to int) []store.UsageRecord {
	var out []store.UsageRecord
	for i := from; i < to; i++ {
		out = append(out, usageRec(i))
	}
	return out
}

func insert(t *testing.T, s store.Store, recs []store.UsageRecord, wantNew int) {
	t.Helper()
	n, err := s.InsertUsage(ctx(t), recs)
	if err != nil {
		t.Fatalf("InsertUsage(%d records): %v", len(recs), err)
	}
	if n != wantNew {
		t.Errorf("InsertUsage(%d records) = %d new, want %d", len(recs), n, wantNew)
	}
}

func listUsage(t *testing.T, s store.Store, f store.UsageFilter) []string {
	t.Helper()
	recs, err := s.ListUsage(ctx(t), f)
	if err != nil {
		t.Fatalf("ListUsage(%+v): %v", f, err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.RequestID
	}
	return ids
}

// ids returns the request ids of usageRec(i) for each i, in the order given.
func ids(is ...int) []string {
	out := make([]string, len(is))
	for j, i := range is {
		out[j] = usageRec(i).RequestID
	}
	return out
}

func countUsage(t *testing.T, s store.Store) int {
	t.Helper()
	return len(listUsage(t, s, store.UsageFilter{Limit: 1 << 20}))
}

func testInsertUsageIdempotent(t *testing.T, s store.Store) {
	insert(t, s, nil, 0)
	insert(t, s, usageRecs(0, 10), 10)
	insert(t, s, usageRecs(0, 10), 0) // a replayed batch adds nothing
	if n := countUsage(t, s); n != 10 {
		t.Fatalf("%d rows after replaying a batch, want 10", n)
	}
	insert(t, s, usageRecs(5, 15), 5) // half old, half new
	// A record repeated inside one batch counts once.
	insert(t, s, append(usageRecs(15, 17), usageRec(15), usageRec(16)), 2)
	// The key is (request id, started at): a record keeps its started_at on replay, so the same
	// id at another start is another record, not a duplicate.
	other := usageRec(0)
	other.StartedAt = other.StartedAt.Add(time.Hour)
	insert(t, s, []store.UsageRecord{other}, 1)
	// A replay whose times carry other sub-microsecond digits still matches: times are stored to
	// the microsecond.
	nanos := usageRec(1)
	nanos.StartedAt = nanos.StartedAt.Truncate(time.Microsecond).Add(5 * time.Nanosecond)
	insert(t, s, []store.UsageRecord{nanos}, 0)
	if n := countUsage(t, s); n != 18 {
		t.Errorf("%d rows, want 18", n)
	}
}

// testInsertUsageLargeBatch crosses the chunk sizes an implementation may use to stay under its
// database's limit of bound parameters.
func testInsertUsageLargeBatch(t *testing.T, s store.Store) {
	insert(t, s, usageRecs(0, 1200), 1200)
	insert(t, s, usageRecs(1100, 1300), 100)
	if n := countUsage(t, s); n != 1300 {
		t.Errorf("%d rows, want 1300", n)
	}
}

func testUsageRoundTrip(t *testing.T, s store.Store) {
	full := store.UsageRecord{
		RequestID: "0192f0c1-7a3b-7cde-8f00-000000000001", ClientRequestID: "client-42",
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", KeyID: "k1", UserID: "u1", TenantID: "acme",
		SessionID: "sess-1", Model: "claude-sonnet", UpstreamModel: "claude-sonnet-4-5-20250929",
		Provider: "anthropic", Deployment: "anthropic/claude-sonnet-4-5", Endpoint: "chat/completions",
		Stream: true, Status: 499, ErrorType: "client_closed", PromptTokens: 1 << 40,
		CompletionTokens: 7, CachedTokens: 3, ReasoningTokens: 2, UsageSource: "partial",
		CostPicoUSD: ptr(int64(9_000_000_000_000_000_000)), PriceVersion: "2026-04-01",
		Units: 3, Unit: "image", LatencyMS: 1234, TTFTMS: 56, ServedModel: "claude-haiku",
		ReplayOf: "0192f0c1-7a3b-7cde-8f00-000000000000", CacheWriteTokens: 5,
		StartedAt: t0, EndedAt: t0.Add(1234*time.Millisecond + 999*time.Nanosecond),
		Experiment: "exp-1", Variant: "treatment",
	}
	zeroCost := usageRec(1)
	zeroCost.CostPicoUSD = ptr(int64(0)) // priced and free is not the same as unpriced
	unpriced := usageRec(2)
	insert(t, s, []store.UsageRecord{full, zeroCost, unpriced}, 3)

	recs, err := s.ListUsage(ctx(t), store.UsageFilter{})
	if err != nil {
		t.Fatalf("ListUsage: %v", err)
	}
	got := map[string]store.UsageRecord{}
	for _, r := range recs {
		got[r.RequestID] = r
	}
	for _, want := range []store.UsageRecord{full, zeroCost, unpriced} {
		assertUsage(t, got[want.RequestID], want)
	}
}

func assertUsage(t *testing.T, got, want store.UsageRecord) {
	t.Helper()
	if !got.StartedAt.Equal(want.StartedAt.Truncate(time.Microsecond)) ||
		!got.EndedAt.Equal(want.EndedAt.Truncate(time.Microsecond)) {
		t.Errorf("%s: times %v–%v, want %v–%v to the microsecond", want.RequestID,
			got.StartedAt, got.EndedAt, want.StartedAt, want.EndedAt)
	}
	if (got.CostPicoUSD == nil) != (want.CostPicoUSD == nil) ||
		(got.CostPicoUSD != nil && *got.CostPicoUSD != *want.CostPicoUSD) {
		t.Errorf("%s: cost %v, want %v", want.RequestID, deref(got.CostPicoUSD), deref(want.CostPicoUSD))
	}
	got.StartedAt, got.EndedAt, got.CostPicoUSD = want.StartedAt, want.EndedAt, want.CostPicoUSD
	if got != want {
		t.Errorf("record round trip:\n got %+v\nwant %+v", got, want)
	}
}

func deref(p *int64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func testListUsageFilters(t *testing.T, s store.Store) {
	var recs []store.UsageRecord
	for i := range 12 {
		r := usageRec(i)
		r.UserID = []string{"u1", "u2", "u3"}[i%3]
		r.KeyID = []string{"k1", "k2"}[i%2]
		r.Model = []string{"gpt-4o", "gpt-4o", "claude", "gemini"}[i%4]
		if i%5 == 0 {
			r.Status, r.ErrorType = 502, "upstream_error"
		}
		if i == 7 {
			r.TenantID, r.TraceID, r.ClientRequestID = "acme", "trace-7", "client-7"
		}
		recs = append(recs, r)
	}
	insert(t, s, recs, len(recs))

	newestFirst := func(keep func(i int) bool) []string {
		var out []string
		for i := 11; i >= 0; i-- {
			if keep(i) {
				out = append(out, usageRec(i).RequestID)
			}
		}
		return out
	}
	at := func(i int) time.Time { return usageRec(i).StartedAt }
	cases := []struct {
		name string
		f    store.UsageFilter
		want []string
	}{
		{"all, newest first", store.UsageFilter{}, newestFirst(func(int) bool { return true })},
		{"user", store.UsageFilter{UserID: "u2"}, newestFirst(func(i int) bool { return i%3 == 1 })},
		{"key", store.UsageFilter{KeyID: "k2"}, newestFirst(func(i int) bool { return i%2 == 1 })},
		{"model", store.UsageFilter{Model: "claude"}, ids(10, 6, 2)},
		{"status", store.UsageFilter{Status: 502}, ids(10, 5, 0)},
		{"tenant", store.UsageFilter{TenantID: "acme"}, ids(7)},
		{"trace", store.UsageFilter{TraceID: "trace-7"}, ids(7)},
		{"client request id", store.UsageFilter{ClientRequestID: "client-7"}, ids(7)},
		{"from inclusive", store.UsageFilter{From: at(9)}, ids(11, 10, 9)},
		{"to exclusive", store.UsageFilter{To: at(2)}, ids(1, 0)},
		{"range", store.UsageFilter{From: at(3), To: at(6)}, ids(5, 4, 3)},
		{"range in another zone", store.UsageFilter{From: at(3).UTC(), To: at(6).In(time.FixedZone("PST", -8*3600))}, ids(5, 4, 3)},
		{"combined", store.UsageFilter{UserID: "u1", KeyID: "k2", From: at(1)}, ids(9, 3)},
		{"no match", store.UsageFilter{UserID: "nobody"}, nil},
	}
	for _, tc := range cases {
		if got := listUsage(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ListUsage(%+v) = %v, want %v", tc.name, tc.f, got, tc.want)
		}
	}
}

func testListUsagePaging(t *testing.T, s store.Store) {
	insert(t, s, usageRecs(0, 130), 130)
	var all []string
	for i := 129; i >= 0; i-- {
		all = append(all, usageRec(i).RequestID)
	}
	if got := listUsage(t, s, store.UsageFilter{}); !slices.Equal(got, all[:100]) {
		t.Errorf("ListUsage() returned %d records, want the newest 100", len(got))
	}
	if got := listUsage(t, s, store.UsageFilter{Limit: 20, Offset: 120}); !slices.Equal(got, all[120:]) {
		t.Errorf("ListUsage(limit 20, offset 120) = %v, want %v", got, all[120:])
	}
	// Records started at the same instant still page deterministically.
	same := usageRecs(200, 205)
	for i := range same {
		same[i].StartedAt = t0.Add(-time.Hour)
	}
	insert(t, s, same, 5)
	f := store.UsageFilter{To: t0, Limit: 2}
	var paged []string
	for f.Offset = 0; f.Offset < 6; f.Offset += 2 {
		paged = append(paged, listUsage(t, s, f)...)
	}
	if want := ids(204, 203, 202, 201, 200); !slices.Equal(paged, want) {
		t.Errorf("paging over equal start times = %v, want %v", paged, want)
	}
}

// testMetacharacters: values full of SQL and LIKE metacharacters are stored and matched exactly,
// and break nothing.
func testMetacharacters(t *testing.T, s store.Store) {
	c := ctx(t)
	nasty := []string{`%`, `_`, `\`, `\%`, `'`, `' OR '1'='1`, `"; DROP TABLE usage_records; --`,
		`$1`, `?`, "nul\x01byte", "ünïcødé ✓"}
	for i, v := range nasty {
		id := fmt.Sprintf("u%d", i)
		mustCreateUser(t, s, store.User{ID: id, Tier: v, Email: v})
		mustCreateKey(t, s, store.APIKey{ID: v, Name: v, Prefix: v, UserID: id, Models: []string{v}}, "hash-"+v)
		r := usageRec(i)
		r.UserID, r.KeyID, r.Model, r.ErrorType = v, v, v, v
		insert(t, s, []store.UsageRecord{r}, 1)
	}
	insert(t, s, []store.UsageRecord{usageRec(100)}, 1) // plain values, which no pattern may match
	for i, v := range nasty {
		if got := listUsage(t, s, store.UsageFilter{UserID: v}); !slices.Equal(got, ids(i)) {
			t.Errorf("ListUsage(user %q) = %v, want %v", v, got, ids(i))
		}
		if got := listUsage(t, s, store.UsageFilter{Model: v, KeyID: v}); !slices.Equal(got, ids(i)) {
			t.Errorf("ListUsage(model, key %q) = %v, want %v", v, got, ids(i))
		}
		k, err := s.KeyBySecret(c, "hash-"+v, time.Now())
		if err != nil || k.ID != v || k.Name != v || !slices.Equal(k.Models, []string{v}) {
			t.Errorf("KeyBySecret(%q) = %+v, %v", "hash-"+v, k, err)
		}
		keys, err := s.ListKeys(c, store.KeyFilter{UserID: fmt.Sprintf("u%d", i)})
		if err != nil || len(keys) != 1 || keys[0].ID != v {
			t.Errorf("ListKeys(user u%d) = %+v, %v; want key %q", i, keys, err, v)
		}
	}
	if n := countUsage(t, s); n != len(nasty)+1 {
		t.Errorf("%d usage rows, want %d", n, len(nasty)+1)
	}
}

// testListUsageKeyset: paging with After visits every matching record once, in ListUsage's
// order, including records that share a start time across a page boundary, and a filter still
// applies on every page.
func testListUsageKeyset(t *testing.T, s store.Store) {
	recs := usageRecs(0, 30)
	for i := range recs {
		// Runs of three records started at the same instant, so page ends fall inside runs.
		recs[i].StartedAt = t0.Add(time.Duration(i/3) * time.Minute)
		if i%4 == 0 {
			recs[i].UserID = "u2"
		}
	}
	insert(t, s, recs, len(recs))
	walk := func(f store.UsageFilter) []string {
		var out []string
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("keyset paging with %+v does not end: %d records, starting %v", f, len(out), out[:min(len(out), 8)])
			}
			page, err := s.ListUsage(ctx(t), f)
			if err != nil {
				t.Fatalf("ListUsage(%+v): %v", f, err)
			}
			for _, r := range page {
				out = append(out, r.RequestID)
			}
			if len(page) < f.Limit {
				return out
			}
			last := page[len(page)-1]
			f.After = &store.UsageCursor{StartedAt: last.StartedAt, RequestID: last.RequestID}
		}
	}
	for _, f := range []store.UsageFilter{
		{Limit: 4},
		{Limit: 2, UserID: "u2"},
		{Limit: 5, From: t0.Add(2 * time.Minute), To: t0.Add(7 * time.Minute)},
		{Limit: 1},
	} {
		want := listUsage(t, s, store.UsageFilter{UserID: f.UserID, From: f.From, To: f.To, Limit: 1000})
		if got := walk(f); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("keyset pages of %+v = %v, want %v", f, got, want)
		}
	}
	// A cursor in another zone names the same instant.
	c := &store.UsageCursor{StartedAt: recs[10].StartedAt.UTC(), RequestID: recs[10].RequestID}
	if got, want := listUsage(t, s, store.UsageFilter{After: c, Limit: 3}), ids(9, 8, 7); !slices.Equal(got, want) {
		t.Errorf("ListUsage(after %s) = %v, want %v", recs[10].RequestID, got, want)
	}
}
