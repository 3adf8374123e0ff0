//go:build unix

package outbound

import "syscall"

// alive reports whether a pooled connection can carry a request: the upstream has neither closed
// it nor sent anything on it while it was idle. One non-blocking peek, no wait.
func (c *h1Conn) alive() bool {
	if c.raw == nil {
		return true
	}
	var buf [1]byte
	var perr error
	if err := c.raw.Read(func(fd uintptr) bool {
		_, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return false
	}
	// EAGAIN: nothing to read, the connection is open. No error: closed (0 bytes) or data the
	// upstream sent unasked; either way the connection is not used again.
	return perr == syscall.EAGAIN || perr == syscall.EWOULDBLOCK
}
