package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// benchChildAttr makes the kernel kill a bench child when the bench dies, even by SIGKILL, so no
// mockllm or gateway outlives a crashed run.
func benchChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// benchChildAttrAs is benchChildAttr for a child that runs as user uid, group gid: PostgreSQL,
// which refuses to run as root.
func benchChildAttrAs(uid, gid uint32) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: &syscall.Credential{Uid: uid, Gid: gid}}
}

// raiseFDLimit lifts the descriptor limit, for this process and the children it starts (which
// inherit it), to want, and returns the limit. The soft limit goes up to the hard one; past the
// hard one only a privileged process may go (root may raise it, up to the kernel's nr_open), and
// otherwise the hard limit is what is left.
func raiseFDLimit(want uint64) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if want > l.Max {
		if nrOpen := kernelNROpen(); nrOpen > 0 && want > nrOpen {
			want = nrOpen
		}
		if want > l.Max && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
			return l.Cur
		}
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}

// kernelNROpen is the most descriptors the kernel lets any process have (fs.nr_open), 0 when
// unknown.
func kernelNROpen() uint64 {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}
