//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package multicast

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for a socket receive buffer of n bytes and returns
// what the system granted and, when that is much less, how to raise the
// bound, kern.ipc.maxsockbuf.
func setReadBuffer(conn *net.UDPConn, n int) (got int, raise string) {
	conn.SetReadBuffer(n) // best effort: the system may refuse or cap it
	rc, err := conn.SyscallConn()
	if err != nil {
		return n, ""
	}
	var v int
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		return n, ""
	}
	if v < n/2 {
		return v, "sysctl kern.ipc.maxsockbuf (it bounds socket buffers with their overhead)"
	}
	return v, ""
}
