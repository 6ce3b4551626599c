package channel

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// peerCred reads the credentials of the process at the other end of a
// Unix socket, as the kernel recorded them at connect or listen time.
func peerCred(nc net.Conn) (Cred, bool) {
	var uc *syscall.Ucred
	if !withFD(nc, func(fd int) (err error) {
		uc, err = syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		return err
	}) {
		return Cred{}, false
	}
	return Cred{PID: int(uc.Pid), UID: int(uc.Uid), GID: int(uc.Gid)}, true
}

// programName is the command name of a process, or "" if it is gone.
func programName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
