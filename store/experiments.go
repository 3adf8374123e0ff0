package store

// The statements of ExperimentResults that both stores share: SQLite has no percentile function,
// so the nearest-rank percentiles are computed with window functions, which both dialects run
// alike and give the same answers.

// ExperimentPercentile is one measure whose p50 and p95 ExperimentResults reports: its column,
// which records it counts, and where its figures go.
type ExperimentPercentile struct {
	Column string // a usage_records column of milliseconds
	Where  string // which records of the experiment are its samples
	Set    func(v *VariantResult, samples, p50, p95 int64)
}

// ExperimentPercentiles are latency (successful requests) and TTFT (successful requests that
// sent a first byte).
var ExperimentPercentiles = []ExperimentPercentile{
	{Column: "latency_ms", Where: "status < 400", Set: func(v *VariantResult, n, p50, p95 int64) {
		v.LatencySamples, v.LatencyP50MS, v.LatencyP95MS = n, p50, p95
	}},
	{Column: "ttft_ms", Where: "status < 400 AND ttft_ms > 0", Set: func(v *VariantResult, n, p50, p95 int64) {
		v.TTFTSamples, v.TTFTP50MS, v.TTFTP95MS = n, p50, p95
	}},
}

// ExperimentPercentileSQL selects, per variant of the experiment named by the placeholder arg,
// the sample count and the nearest-rank p50 and p95 of p's column: the value of rank ⌈p·n⌉ in
// ascending order, which is the smallest value whose rank r has r·100 ≥ p·100·n.
func ExperimentPercentileSQL(p ExperimentPercentile, arg string) string {
	return `SELECT variant, max(n), min(CASE WHEN rn * 100 >= n * 50 THEN v END), min(CASE WHEN rn * 100 >= n * 95 THEN v END)
	FROM (SELECT variant, ` + p.Column + ` AS v, row_number() OVER (PARTITION BY variant ORDER BY ` + p.Column + `) AS rn,
		count(*) OVER (PARTITION BY variant) AS n
		FROM usage_records WHERE experiment = ` + arg + ` AND ` + p.Where + `) ranked
	GROUP BY variant`
}
