//go:build !unix

package outbound

// alive cannot peek here: a closed connection shows when the request is written.
func (c *h1Conn) alive() bool { return true }
