package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRaiseFDLimitForTheLargestLevel: the scenario's levels set how many descriptors are asked
// for, and a privileged process gets them past the hard limit, so that 10,000 streams are not capped at the
// usual 20,000 descriptors. The test raises its own process's limit, which nothing else reads.
func TestRaiseFDLimitForTheLargestLevel(t *testing.T) {
	if got, want := slowStreamsFDs([]int{2000, 10000}), uint64(10000*fdsPerStream+fdsReserve); got != want {
		t.Fatalf("slowStreamsFDs = %d, want %d", got, want)
	}
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	want := before.Max + 1000
	if n := kernelNROpen(); n > 0 && want > n {
		t.Skipf("the hard limit %d is already the kernel's nr_open", before.Max)
	}
	got := raiseFDLimit(want)
	if !mayRaiseHardLimit(t) {
		if got != before.Max {
			t.Fatalf("unprivileged: limit %d, want the hard limit %d", got, before.Max)
		}
		return
	}
	if got != want {
		t.Fatalf("privileged: limit %d, want %d (the hard limit was %d)", got, want, before.Max)
	}
}

// mayRaiseHardLimit reports whether this process holds CAP_SYS_RESOURCE (root in a container may
// not), which raising a hard limit needs.
func mayRaiseHardLimit(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			const capSysResource = 24
			return caps&(1<<capSysResource) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// TestCPUSteal: the steal share is read off /proc/stat's aggregate line (its eighth field of the
// eight summed), and this machine's /proc/stat reads.
func TestCPUSteal(t *testing.T) {
	start := parseCPUTimes("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n")
	if start != (cpuTimes{total: 1000, steal: 35}) {
		t.Fatalf("parsed %+v, want total 1000, steal 35", start)
	}
	end := parseCPUTimes("cpu  400 0 150 1150 10 0 15 275 0 0\n")
	p, ok := start.stealPercent(end)
	if !ok || p != 24 { // 240 ticks stolen of 1000
		t.Fatalf("steal %v %v, want 24", p, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 3\n", "cpu  a 0 0 0 0 0 0 0\n"} {
		if got := parseCPUTimes(bad); got != (cpuTimes{}) {
			t.Errorf("parseCPUTimes(%q) = %+v, want nothing", bad, got)
		}
	}
	if _, ok := start.stealPercent(start); ok {
		t.Error("a share over no time")
	}
	if _, ok := (cpuTimes{}).stealPercent(end); ok {
		t.Error("a share without a first reading")
	}
	if now := readCPUTimes(); now.total == 0 {
		t.Fatal("/proc/stat gave no CPU times")
	}
}
