//go:build !linux

package bench

import "syscall"

// benchChildAttr is empty where the kernel cannot tie a child's life to its parent's; the bench
// then relies on stopping its children itself.
func benchChildAttr() *syscall.SysProcAttr {
	return nil
}

// benchChildAttrAs cannot change the child's user here: the ledger scenario needs a bench that is
// not root (PostgreSQL refuses root) on such systems.
func benchChildAttrAs(uid, gid uint32) *syscall.SysProcAttr { return nil }

// raiseFDLimit leaves the descriptor limit as it is, and reports none (the streams are not
// capped by it).
func raiseFDLimit(uint64) uint64 { return 0 }
