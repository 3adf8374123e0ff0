package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRedisLinesCarryTargets: the gateway+redis traffic lines name their targets (round trips
// and redis-server CPU per request, Redis bytes per subject) and whether each was met.
func TestRedisLinesCarryTargets(t *testing.T) {
	r := tracingRounds([3]float64{1000, 1000, 1000}, [3]float64{400, 500, 450}, [3]float64{380, 480, 430})
	r.summarize()
	r.Redis = &redisReport{RoundTrips: 1.05, Admissions: 1, Settlements: 0.05,
		CPUPerRequest: benchDuration(20 * time.Microsecond), SubjectBytes1k: 4000, SubjectBytes10k: 50000}
	var out bytes.Buffer
	if err := r.writeText(&out); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]string{
		"redis round trips per request":                    "target ≤ 1.00: MISSED",
		"redis-server CPU per request":                     "target ≤ 25µs: met",
		"redis bytes per subject at 1k / 10k requests/min": "4000 / 50000",
	} {
		if line := lineWith(out.String(), prefix); !strings.Contains(line, want) {
			t.Errorf("line %q; want %q", line, want)
		}
	}
	if line := lineWith(out.String(), "redis bytes per subject"); !strings.Contains(line, "MISSED") {
		t.Errorf("line %q: 12.5× the bytes at 10× the rate is not bounded", line)
	}
}

// TestMeasureSubjectBytes: the bytes per subject come from a real redis-server, after a minute's
// worth of requests at each rate.
func TestMeasureSubjectBytes(t *testing.T) {
	path, err := findRedisServer("")
	if err != nil {
		t.Skip(err)
	}
	r, err := startBenchRedis(context.Background(), path, t.TempDir(), benchChildEnv())
	if r != nil {
		t.Cleanup(func() {
			if r.client != nil {
				_ = r.client.Close()
			}
			r.child.stop()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	var rep redisReport
	if err := r.measureSubjectBytes(context.Background(), &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("bytes per subject: %d at 1k rpm, %d at 10k rpm", rep.SubjectBytes1k, rep.SubjectBytes10k)
	if rep.SubjectBytes1k <= 0 || rep.SubjectBytes10k <= 0 {
		t.Errorf("bytes per subject %d, %d: want both measured", rep.SubjectBytes1k, rep.SubjectBytes10k)
	}
}
