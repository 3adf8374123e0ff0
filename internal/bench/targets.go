package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// The performance targets: what the production path (Redis quotas on), the gateway, its added
// latency, its memory and its ledger must reach, as same-run ratios and figures. Each is a floor
// or a ceiling; the report says of each whether this run met it.
const (
	targetRedisRPSRatio       = 0.35 // gateway+redis/direct, non-stream
	targetRedisStreamRPSRatio = 0.50
	targetRedisRoundTrips     = 1.0
	targetRedisCPU            = 25 * time.Microsecond
	targetGatewayRPSRatio     = 0.45
	targetGatewayStreamRatio  = 0.65
	targetGatewayCPURatio     = 1.25 // gateway CPU per request over the pass-through's
	targetAddedP50            = 30 * time.Microsecond
	targetAddedP99            = 150 * time.Microsecond
	targetRedisAddedP50       = 120 * time.Microsecond
)

// perfTarget is one target and this run's figure against it. A figure only Reported has its
// target proved elsewhere (a Go benchmark), and counts neither as met nor as missed.
type perfTarget struct {
	Name     string `json:"name"`
	Figure   string `json:"figure"`
	Target   string `json:"target"`
	Met      bool   `json:"met"`
	Reported bool   `json:"reported_only,omitempty"`
}

// perfTargets lists every target this run has a figure for, in the order the work names them.
// The added latencies are against the pass-through (baseline): medians of per-round differences.
func (r *benchReport) perfTargets() []perfTarget {
	var ts []perfTarget
	add := func(name, figure, target string, met bool) {
		ts = append(ts, perfTarget{Name: name, Figure: figure, Target: target, Met: met})
	}
	q := r.Ratios
	stream := r.Settings.StreamRPS
	redis := r.index(nameGatewayRedis) == pathGatewayRedis && q.Redis != nil
	if redis {
		add("gateway+redis/direct RPS", fmt.Sprintf("%.2f", q.Redis.RPS), fmt.Sprintf("≥ %.2f", targetRedisRPSRatio), q.Redis.RPS >= targetRedisRPSRatio)
		if stream {
			add("gateway+redis/direct stream RPS", fmt.Sprintf("%.2f", q.Redis.StreamRPS), fmt.Sprintf("≥ %.2f", targetRedisStreamRPSRatio),
				q.Redis.StreamRPS >= targetRedisStreamRPSRatio)
		}
		if d := r.Redis; d != nil && d.Requests > 0 {
			add("Redis round trips per request", fmt.Sprintf("%.2f", d.RoundTrips), fmt.Sprintf("≤ %.2f", targetRedisRoundTrips), d.RoundTrips <= targetRedisRoundTrips)
			if d.CPUPerRequest > 0 {
				add("redis-server CPU per request", d.CPUPerRequest.String(), "≤ "+benchDuration(targetRedisCPU).String(), d.CPUPerRequest <= benchDuration(targetRedisCPU))
			}
			if d.SubjectBytes1k > 0 {
				// Bounded: the state does not grow with the rate (10× the rate within 1.5× the bytes).
				add("Redis bytes per RPM-limited subject at 1k / 10k requests/min", fmt.Sprintf("%d / %d", d.SubjectBytes1k, d.SubjectBytes10k),
					"bounded (10k ≤ 1.5 × 1k)", float64(d.SubjectBytes10k) <= 1.5*float64(d.SubjectBytes1k))
			}
		}
	}
	add("gateway/direct RPS", fmt.Sprintf("%.2f", q.GatewayRPS), fmt.Sprintf("≥ %.2f", targetGatewayRPSRatio), q.GatewayRPS >= targetGatewayRPSRatio)
	if stream {
		add("gateway/direct stream RPS", fmt.Sprintf("%.2f", q.GatewayStreamRPS), fmt.Sprintf("≥ %.2f", targetGatewayStreamRatio), q.GatewayStreamRPS >= targetGatewayStreamRatio)
	}
	if q.GatewayCPURatio > 0 {
		add("gateway CPU per request / pass-through's", fmt.Sprintf("×%.2f", q.GatewayCPURatio), fmt.Sprintf("≤ ×%.2f", targetGatewayCPURatio),
			q.GatewayCPURatio <= targetGatewayCPURatio)
	}
	p50 := func(x pathRound) benchDuration { return x.P50 }
	p99 := func(x pathRound) benchDuration { return x.P99 }
	if g := r.addedOver(pathGateway, pathBaseline, p50); g != nil {
		add("gateway p50 at c=1 over the pass-through", g.signed(), "≤ +"+benchDuration(targetAddedP50).String(), *g <= benchDuration(targetAddedP50))
	}
	if g := r.addedOver(pathGateway, pathBaseline, p99); g != nil {
		add("gateway p99 at c=1 over the pass-through", g.signed(), "≤ +"+benchDuration(targetAddedP99).String(), *g <= benchDuration(targetAddedP99))
	}
	if redis {
		if g := r.addedOver(pathGatewayRedis, pathBaseline, p50); g != nil {
			add("gateway+redis p50 at c=1 over the pass-through", g.signed(), "≤ +"+benchDuration(targetRedisAddedP50).String(),
				*g <= benchDuration(targetRedisAddedP50))
		}
	}
	if s := r.SlowStreams; s != nil {
		for _, run := range s.Runs {
			if !run.Judged {
				continue
			}
			other := s.otherRun()
			up := " (upstream " + run.Upstream + ")"
			idle := fmt.Sprintf("%.1f MB", run.IdleRSSMB)
			if other != nil {
				idle += fmt.Sprintf("; %s: %.1f MB", other.Upstream, other.IdleRSSMB)
			}
			add("slow streams: idle RSS"+up, idle, fmt.Sprintf("≤ %.0f MB", targetIdleRSSMB), run.IdleRSSMet)
			if n := len(run.Levels); n > 0 {
				lv := run.Levels[n-1]
				fig := fmt.Sprintf("%.1f MB", lv.RSSPerThousandMB)
				if other != nil && len(other.Levels) == n {
					ol := other.Levels[n-1]
					fig += fmt.Sprintf("; %s: %.1f MB at %d open", other.Upstream, ol.RSSPerThousandMB, ol.Open)
				}
				add(fmt.Sprintf("slow streams: RSS per 1k streams, %d open%s", lv.Open, up), fig,
					fmt.Sprintf("≤ %.0f MB at %d", targetRSSPerThousandMB, lv.Streams), lv.RSSPerThousandMet && lv.Open >= lv.Streams)
			}
			if run.AllocsMeasured {
				ts = append(ts, perfTarget{Name: "allocations per relayed SSE event, whole process" + up, Figure: fmt.Sprintf("%.2f", run.AllocsPerEvent),
					Target: "0 in the relay, held by BenchmarkRelayEvent and TestRelayAllocatesNothingPerEvent", Reported: true})
			}
		}
	}
	if l := r.Ledger; l != nil && l.Skipped == "" {
		for _, run := range l.Runs {
			add(fmt.Sprintf("ledger: charged rows/s into PostgreSQL, %d accounts, %d writers", run.Accounts, l.Writers),
				fmt.Sprintf("%.0f", run.RowsPerSecond), fmt.Sprintf("≥ %d", targetLedgerRowsPerSec), run.Met)
		}
	}
	return ts
}

// addedOver is the median over the rounds of path a's figure less path b's, nil when either path
// did not run or a round lacks the figure.
func (r *benchReport) addedOver(a, b int, f func(pathRound) benchDuration) *benchDuration {
	if a >= len(r.Paths) || b >= len(r.Paths) || len(r.Paths[a].Rounds) != len(r.Paths[b].Rounds) || len(r.Paths[a].Rounds) == 0 {
		return nil
	}
	xs := make([]benchDuration, len(r.Paths[a].Rounds))
	for i, x := range r.Paths[a].Rounds {
		y := r.Paths[b].Rounds[i]
		if f(x) == 0 || f(y) == 0 {
			return nil
		}
		xs[i] = f(x) - f(y)
	}
	d := medianOf(xs)
	return &d
}

// writeTargets prints the targets as a table, each with met or missed, and how many were met.
func writeTargets(w io.Writer, ts []perfTarget) error {
	if len(ts) == 0 {
		return nil
	}
	met, judged := 0, 0
	for _, t := range ts {
		if !t.Reported {
			judged++
		}
		if t.Met {
			met++
		}
	}
	fmt.Fprintf(w, "\nperformance targets: %d of %d met\n", met, judged)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range ts {
		if t.Reported {
			fmt.Fprintf(tw, "  %s\t%s\t(reported; target %s)\n", t.Name, t.Figure, t.Target)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t(target %s: %s)\n", t.Name, t.Figure, t.Target, metOrMissed(t.Met))
	}
	return tw.Flush()
}

// otherRun is the run of the scenario that is not judged, nil when there is none.
func (s *slowStreamsReport) otherRun() *slowStreamsRun {
	for i := range s.Runs {
		if !s.Runs[i].Judged {
			return &s.Runs[i]
		}
	}
	return nil
}
