package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		base, headroom uint64
		floor, want    int
	}{
		{0, 32 * mib, 100, 100},         // nothing measured yet
		{8 * mib, 32 * mib, 100, 400},   // a small heap gets the headroom
		{3 * mib, 32 * mib, 100, 1067},  // rounded up: never less than the headroom
		{32 * mib, 32 * mib, 100, 100},  // as large as the headroom: GOGC's own proportion
		{200 * mib, 32 * mib, 100, 100}, // larger: unchanged
		{8 * mib, 32 * mib, 500, 500},   // a GOGC above what the headroom needs is kept
		{8 * mib, 32 * mib, 50, 400},    // a lower one is raised on a small heap only
		{100 * mib, 32 * mib, 50, 50},   //
		{1, 1 << 40, 100, 1 << 20},      // bounded
	} {
		if got := Percent(c.base, c.headroom, c.floor); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.base, c.headroom, c.floor, got, c.want)
		}
	}
}

// gogc is the collector's GOGC as the runtime reports it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until the tuner's finalizer has set GOGC as ok wants (it runs after a cycle,
// on the finalizer goroutine).
func waitGOGC(t *testing.T, what string, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(gogc()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d after 10 s of collections; want %s", gogc(), what)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

var retained [][]byte

func TestTunerFollowsLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const headroom = 32 << 20
	tu := Start(headroom, 0)
	if tu == nil {
		t.Fatal("Start returned nil with GOGC=100")
	}
	defer tu.Stop()
	if second := Start(headroom, 0); second != nil {
		second.Stop()
		t.Fatal("a second tuner started while one runs")
	}
	// The test binary's live heap is a few MB: the goal must leave 32 MB, GOGC well above 100.
	waitGOGC(t, "> 300 for a small heap", func(p int) bool { return p > 300 })
	// A live heap past the headroom gets GOGC's own value back.
	for range 48 { // live, though never written
		retained = append(retained, make([]byte, 1<<20))
	}
	waitGOGC(t, "100 for a 48 MB live heap", func(p int) bool { return p == 100 })
	retained = nil
	waitGOGC(t, "raised again once the heap is small", func(p int) bool { return p > 300 })
	tu.Stop()
	if p := gogc(); p != 100 {
		t.Fatalf("GOGC %d after Stop; want the process's own 100", p)
	}
	// Stopped: collections leave GOGC alone.
	for range 3 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if p := gogc(); p != 100 {
		t.Fatalf("GOGC %d after Stop and collections; want 100", p)
	}
}

func TestTunerOffWithoutHeadroomOrCollector(t *testing.T) {
	if Start(0, 0) != nil || Start(-1, 25) != nil {
		t.Fatal("a headroom of 0 or less must not start a tuner")
	}
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	if tu := Start(64<<20, 0); tu != nil {
		tu.Stop()
		t.Fatal("Start with GOGC=off started a tuner")
	}
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("GOGC %d after Start with GOGC=off; want it left off", p)
	}
	var nilTuner *Tuner
	nilTuner.Stop() // a tuner that never started stops without effect
	debug.SetGCPercent(old)
	tu := Start(64<<20, 0) // and nothing was left marked as running
	if tu == nil {
		t.Fatal("Start after refusals returned nil")
	}
	tu.Stop()
}

// TestTunerPercentForLargeHeap: Start's percent is GOGC for a live heap past the headroom (here
// 160 MB, whose quarter passes 32 MiB), a small heap still gets the headroom, Stop gives the
// process's own GOGC back, and a GOGC in the environment wins over percent.
func TestTunerPercentForLargeHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if v, set := os.LookupEnv("GOGC"); set {
		os.Unsetenv("GOGC")
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	const headroom = 32 << 20
	tu := Start(headroom, 25)
	if tu == nil {
		t.Fatal("Start returned nil")
	}
	defer tu.Stop()
	waitGOGC(t, "> 300 for a small heap", func(p int) bool { return p > 300 })
	for range 160 {
		retained = append(retained, make([]byte, 1<<20))
	}
	waitGOGC(t, "25 for a 160 MB live heap", func(p int) bool { return p == 25 })
	retained = nil
	waitGOGC(t, "raised again once the heap is small", func(p int) bool { return p > 300 })
	tu.Stop()
	if p := gogc(); p != 100 {
		t.Fatalf("GOGC %d after Stop; want the process's own 100", p)
	}

	t.Setenv("GOGC", "100") // what the runtime read at start, as far as Start can tell
	tu = Start(headroom, 25)
	if tu == nil {
		t.Fatal("Start returned nil")
	}
	defer tu.Stop()
	for range 160 {
		retained = append(retained, make([]byte, 1<<20))
	}
	waitGOGC(t, "the environment's 100 for a 160 MB live heap", func(p int) bool { return p == 100 })
	retained = nil
}
