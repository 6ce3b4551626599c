//go:build !linux && !windows && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package multicast

import (
	"net"
	"syscall"
)

// reuse sets nothing where this package has not been tested: a second
// server on the host then fails to bind the port, with a clear error.
func reuse(network, address string, c syscall.RawConn) error { return nil }

// bindAddr is the address the socket binds: the wildcard address.
func bindAddr(group net.IP, port int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4zero, Port: port}
}
