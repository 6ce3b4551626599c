//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package multicast

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuse lets several servers on one host bind the group's port: each of
// them gets its own copy of every multicast datagram. On the BSDs and
// macOS it is SO_REUSEPORT that allows this for multicast; SO_REUSEADDR
// alone would refuse the second bind there.
func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// bindAddr is the address the socket binds: the group itself, which
// these systems allow, so that the socket hears that group only and no
// unicast traffic to the port.
func bindAddr(group net.IP, port int) *net.UDPAddr {
	return &net.UDPAddr{IP: group, Port: port}
}
