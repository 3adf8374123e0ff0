//go:build race

package gateway

// raceEnabled: the race detector is on, which makes sync.Pool drop items on purpose (so pooled
// buffers are allocated again now and then) and adds allocations of its own.
const raceEnabled = true
