package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestLedgerReportLines: each account count prints its median rows per second (with every run's
// figure when there were several) against the 50,000 target, met or missed, and a skipped
// scenario says why; the JSON report carries the runs.
func TestLedgerReportLines(t *testing.T) {
	r := responsesRounds([3]float64{6000, 5000, 5000}, [3]float64{3000, 2000, 2250},
		[3]float64{5000, 4000, 4500}, [3]float64{2300, 1440, 1845})
	r.summarize()
	r.Ledger = &ledgerReport{Server: "PostgreSQL 15.18", Writers: 2, Runs: []ledgerRun{
		{Accounts: 1000, Records: 200_000, RowsPerSecond: 43_210.4, PerRun: []float64{47_000, 43_210.4, 40_100}, Met: false},
		{Accounts: 50, Records: 200_000, RowsPerSecond: 61_000, Met: true},
	}}
	var out bytes.Buffer
	if err := r.writeText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []struct{ prefix, rest string }{
		{"ledger: charged rows/s into PostgreSQL, 1000 accounts",
			"43210 (median of 3 runs: 47000 43210 40100; 200000 records, 2 writers, PostgreSQL 15.18; target ≥ 50000: MISSED)"},
		{"ledger: charged rows/s into PostgreSQL, 50 accounts",
			"61000 (200000 records, 2 writers, PostgreSQL 15.18; target ≥ 50000: met)"},
	} {
		line := strings.Join(strings.Fields(lineWith(text, want.prefix)), " ")
		if !strings.HasSuffix(line, want.rest) {
			t.Errorf("line %q; want it to end %q", line, want.rest)
		}
	}
	var js bytes.Buffer
	if err := r.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"ledger": {`, `"rows_per_second": 43210.4`, `"accounts": 50`, `"rows_per_second_per_run": [`} {
		if !strings.Contains(js.String(), key) {
			t.Errorf("JSON without %s", key)
		}
	}

	r.Ledger = &ledgerReport{Skipped: "PostgreSQL's initdb and postgres not found"}
	out.Reset()
	if err := r.writeText(&out); err != nil {
		t.Fatal(err)
	}
	line := strings.Join(strings.Fields(lineWith(out.String(), "ledger:")), " ")
	if want := "ledger: charged rows/s into PostgreSQL skipped (PostgreSQL's initdb and postgres not found)"; line != want {
		t.Errorf("skipped: line %q; want %q", line, want)
	}
}

// TestLedgerTargetMet: a run meets the target at 50,000 rows per second and above.
func TestLedgerTargetMet(t *testing.T) {
	for _, tc := range []struct {
		rps  float64
		want bool
	}{{49_999, false}, {50_000, true}, {80_000, true}} {
		if got := ledgerMet(tc.rps); got != tc.want {
			t.Errorf("ledgerMet(%v) = %v, want %v", tc.rps, got, tc.want)
		}
	}
}
