package bench

import "syscall"

// benchChildAttr makes the kernel kill a bench child when the bench dies, even by SIGKILL, so no
// mockllm or gateway outlives a crashed run.
func benchChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
