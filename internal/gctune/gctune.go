// Package gctune gives the garbage collector a minimum headroom: a process whose live heap is
// small still allocates a set amount between collections, instead of GOGC's proportion of a few
// megabytes. A large heap gets a GOGC of its own (Start's percent): a gateway holding thousands
// of streams keeps hundreds of MB live, and GOGC=100 lets as much again pile up as garbage.
//
// With GOGC=100 the collector runs whenever the heap has grown by as much as is live. The
// gateway keeps little live (a few MB at rest, a few KB per request in flight) and allocates
// for every request, so under load it collected every few milliseconds. With 32 MiB of headroom the
// bench's gateway took 135 µs of CPU per request where it took 145 (226 per stream, 236 before),
// and fewer of its requests at c=1 were slow; 64 MiB measured the same, at twice the memory. After
// every cycle the tuner sets GOGC so that the next goal is at least the live heap plus the
// headroom; once the live heap (with stacks and globals, which GOGC also counts) is as large as
// the headroom, GOGC is the process's own value again, so a large heap grows by its usual
// proportion and not more. The memory this costs is at most the headroom, and only while the
// process allocates: at rest nothing is allocated and nothing grows.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// samples GOGC applies to: the heap marked live in the last cycle, the stacks and the globals
// scanned (the Go 1.18 pacer's base).
var samples = [...]string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Tuner keeps GOGC at or above what gives the heap its minimum headroom.
type Tuner struct {
	headroom uint64
	floor    int // GOGC for a heap past the headroom
	own      int // GOGC as the process had it, which Stop gives back

	stopped atomic.Bool
	mu      sync.Mutex // one adjustment at a time (finalizers run one at a time; Stop may not)
	sample  []metrics.Sample
	percent int // the GOGC last set
}

// active is set while a tuner runs: GOGC is the process's, so one tuner at a time sets it.
var active atomic.Bool

// Start begins tuning after every garbage collection, for a headroom in bytes, with percent as
// the GOGC of a heap past the headroom (0 or less: the process's own). It does nothing (and
// returns nil) when the headroom is not positive, when another tuner is running, or when the
// collector is off (GOGC=off): a process run with GOGC=off chose its own policy. A GOGC set in
// the environment wins over percent, as the value for large heaps.
func Start(headroom int64, percent int) *Tuner {
	if headroom <= 0 || !active.CompareAndSwap(false, true) {
		return nil
	}
	own := debug.SetGCPercent(100)
	debug.SetGCPercent(own)
	if own < 0 {
		active.Store(false)
		return nil
	}
	floor := own
	if _, set := os.LookupEnv("GOGC"); !set && percent > 0 {
		floor = percent
		debug.SetGCPercent(floor)
	}
	t := &Tuner{headroom: uint64(headroom), floor: floor, own: own, percent: floor}
	t.sample = make([]metrics.Sample, len(samples))
	for i, name := range samples {
		t.sample[i].Name = name
	}
	t.arm()
	return t
}

// arm leaves an unreachable object whose finalizer runs after the next collection: it adjusts
// GOGC from what that cycle found live and arms the next one.
func (t *Tuner) arm() {
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		if t.stopped.Load() {
			return
		}
		t.adjust()
		t.arm()
	})
}

// adjust sets GOGC for the live heap the last cycle measured.
func (t *Tuner) adjust() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	var base uint64
	for _, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			base += s.Value.Uint64()
		}
	}
	p := Percent(base, t.headroom, t.floor)
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// Percent is the GOGC that gives a heap whose pacer base (live heap, stacks and globals) is
// base at least headroom bytes before the next collection, and never less than floor.
func Percent(base, headroom uint64, floor int) int {
	if base == 0 || base*uint64(floor) >= headroom*100 {
		return floor
	}
	p := headroom * 100 / base
	if headroom*100%base != 0 {
		p++
	}
	const most = 1 << 20 // a base of a few bytes is no heap: the bound only keeps p an int
	if p > most {
		p = most
	}
	return int(p)
}

// Stop ends the tuning and gives the process its own GOGC back.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(t.own)
	t.percent = t.own
	active.Store(false)
}
