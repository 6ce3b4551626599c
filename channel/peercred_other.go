//go:build !linux

package channel

import "net"

// peerCred is not implemented on this system yet.
func peerCred(c *net.UnixConn) (Cred, bool) { return Cred{}, false }

func programName(pid int) string { return "" }
