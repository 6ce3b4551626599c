package channel

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred reads the credentials of the process at the other end of a
// Unix socket: its uid and gid from LOCAL_PEERCRED, its pid from
// LOCAL_PEERPID, as the kernel recorded them at connect time.
func peerCred(nc net.Conn) (Cred, bool) {
	var xu *unix.Xucred
	var pid int
	if !withFD(nc, func(fd int) (err error) {
		if xu, err = unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED); err != nil {
			return err
		}
		pid, err = unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		return err
	}) {
		return Cred{}, false
	}
	cr := Cred{PID: pid, UID: int(xu.Uid), GID: -1}
	if xu.Ngroups > 0 {
		cr.GID = int(xu.Groups[0])
	}
	for _, g := range xu.Groups[:min(int(xu.Ngroups), len(xu.Groups))] {
		cr.Groups = append(cr.Groups, int(g))
	}
	return cr, true
}

// programName is not looked up on macOS: it has no /proc, and the error
// that names a socket's holder gives its pid.
func programName(pid int) string { return "" }
