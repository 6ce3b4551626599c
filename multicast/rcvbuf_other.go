//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package multicast

import "net"

// setReadBuffer asks for a socket receive buffer of n bytes. Where this
// package does not read back what was granted, it reports n.
func setReadBuffer(conn *net.UDPConn, n int) (got int, raise string) {
	conn.SetReadBuffer(n) // best effort: the system may cap it
	return n, ""
}
