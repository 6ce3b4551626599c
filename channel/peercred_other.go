//go:build !linux && !darwin

package channel

import "net"

// peerCred is not implemented on this system yet.
func peerCred(nc net.Conn) (Cred, bool) { return Cred{}, false }

func programName(pid int) string { return "" }
