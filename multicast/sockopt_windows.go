//go:build windows

package multicast

import (
	"net"
	"syscall"
)

// reuse lets several servers on one host bind the group's port. Windows
// has no SO_REUSEPORT; its SO_REUSEADDR both allows the second bind and
// hands each socket a copy of every multicast datagram.
func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// bindAddr is the address the socket binds: the wildcard address, since
// Windows refuses to bind a socket to a multicast address.
func bindAddr(group net.IP, port int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4zero, Port: port}
}
