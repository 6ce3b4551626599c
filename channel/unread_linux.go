package channel

import (
	"net"
	"syscall"
	"unsafe"
)

// socketUnread returns how many bytes written to nc its peer has not
// read yet (SIOCOUTQ): the kernel's own measure of whether a client is
// reading, finer than the writer's, whose writes return only once the
// socket's buffer has drained well below full.
func socketUnread(nc net.Conn) (int, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int(n), true
}
