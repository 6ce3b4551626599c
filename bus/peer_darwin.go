package bus

import (
	"net"
	"syscall"
	"unsafe"
)

// xucred is struct xucred of <sys/ucred.h>.
type xucred struct {
	version uint32
	uid     uint32
	ngroups int16
	groups  [16]uint32
}

// peerUID is the uid of the process that listens on the other end of a
// Unix socket: LOCAL_PEERCRED, as the kernel recorded it.
func peerUID(nc net.Conn) (int, error) {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return -1, errNoPeerCred
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	const solLocal, localPeerCred = 0, 1
	var x xucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(x))
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, solLocal, localPeerCred,
			uintptr(unsafe.Pointer(&x)), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			serr = errno
		}
	}); err != nil {
		return -1, err
	}
	if serr != nil {
		return -1, serr
	}
	return int(x.uid), nil
}
