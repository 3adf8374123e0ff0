//go:build !linux

package bench

import "syscall"

// benchChildAttr is empty where the kernel cannot tie a child's life to its parent's; the bench
// then relies on stopping its children itself.
func benchChildAttr() *syscall.SysProcAttr {
	return nil
}
