package multicast

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// setReadBuffer asks for a socket receive buffer of n bytes and returns
// what the system granted and, when that is much less, how to raise the
// bound. Linux caps the request at net.core.rmem_max, which a user
// namespace cannot raise; SO_RCVBUFFORCE passes the cap, but only for a
// process with CAP_NET_ADMIN in the initial namespace, so it is tried
// first and its refusal ignored.
func setReadBuffer(conn *net.UDPConn, n int) (got int, raise string) {
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.SetReadBuffer(n)
		return n, ""
	}
	forced := false
	rc.Control(func(fd uintptr) {
		forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil
	})
	if !forced {
		conn.SetReadBuffer(n) // best effort: capped by net.core.rmem_max
	}
	var v int
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		return n, ""
	}
	got = v / 2 // Linux reports twice the size asked, for its bookkeeping
	if got < n/2 {
		return got, fmt.Sprintf("sysctl -w net.core.rmem_max=%d", n)
	}
	return got, ""
}
