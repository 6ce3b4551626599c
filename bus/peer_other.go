//go:build !linux && !darwin

package bus

import "net"

// peerUID is not known on this system: ServerUID fails every Dial.
func peerUID(net.Conn) (int, error) { return -1, errNoPeerCred }
