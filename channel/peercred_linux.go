package channel

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred reads the credentials of the process at the other end of a
// Unix socket, as the kernel recorded them at connect or listen time:
// SO_PEERCRED, and the supplementary groups from SO_PEERGROUPS where the
// kernel has it (Linux 4.13 and later).
func peerCred(nc net.Conn) (Cred, bool) {
	var uc *syscall.Ucred
	var groups []int
	if !withFD(nc, func(fd int) (err error) {
		uc, err = syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		if err == nil {
			groups = peerGroups(fd)
		}
		return err
	}) {
		return Cred{}, false
	}
	return Cred{PID: int(uc.Pid), UID: int(uc.Uid), GID: int(uc.Gid), Groups: groups}, true
}

// peerGroups reads SO_PEERGROUPS: nil when the kernel does not have it.
func peerGroups(fd int) []int {
	buf := make([]uint32, 64)
	for range 2 {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE:
			buf = make([]uint32, size/4+1)
			continue
		case errno != 0:
			return nil
		}
		out := make([]int, size/4)
		for i := range out {
			out[i] = int(buf[i])
		}
		return out
	}
	return nil
}

// programName is the command name of a process, or "" if it is gone.
func programName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
