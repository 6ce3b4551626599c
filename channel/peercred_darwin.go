package channel

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred reads the credentials of the process at the other end of a
// Unix socket: its uid and gid from LOCAL_PEERCRED, its pid from
// LOCAL_PEERPID, as the kernel recorded them at connect time.
func peerCred(nc net.Conn) (Cred, bool) {
	c, ok := nc.(*net.UnixConn)
	if !ok {
		return Cred{}, false
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return Cred{}, false
	}
	var xu *unix.Xucred
	var pid int
	var serr, perr error
	if err := raw.Control(func(fd uintptr) {
		xu, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		pid, perr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	}); err != nil || serr != nil || perr != nil {
		return Cred{}, false
	}
	cr := Cred{PID: pid, UID: int(xu.Uid), GID: -1}
	if xu.Ngroups > 0 {
		cr.GID = int(xu.Groups[0])
	}
	return cr, true
}

// programName is not looked up on macOS: it has no /proc, and the error
// that names a socket's holder gives its pid.
func programName(pid int) string { return "" }
