package router_test

import "syscall"

// dieWithParent makes a child process get SIGKILL when the test binary
// dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
