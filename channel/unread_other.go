//go:build !linux

package channel

import "net"

// socketUnread reports false where the system cannot say how much of
// what was written the peer has read: the writer's progress alone then
// tells whether a client is reading.
func socketUnread(net.Conn) (int, bool) { return 0, false }
