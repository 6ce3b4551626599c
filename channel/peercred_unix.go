//go:build linux || darwin

package channel

import "net"

// withFD runs f on the file descriptor of a Unix socket connection, and
// reports whether nc is one and f succeeded.
func withFD(nc net.Conn, f func(fd int) error) bool {
	c, ok := nc.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return false
	}
	return ferr == nil
}
