package bench

import "syscall"

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

// raiseFDLimit lifts the soft descriptor limit to the hard one, for this process and the children
// it starts (which inherit it), and returns the limit.
func raiseFDLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}
