package multicast

import "net/netip"

// socket is what the link needs of its UDP socket. The link's writer
// goroutine is the only one to call writeBatch and its read goroutine the
// only one to call readBatch. It is also the seam where a test shapes
// what the network does (see Config.wrap).
type socket interface {
	// writeBatch sends datagrams to the group, in order, and returns how
	// many were sent. On an error, dgs[n] is the datagram that failed.
	writeBatch(dgs [][]byte) (n int, err error)
	// readBatch waits for at least one datagram and reads up to len(ms)
	// of them, returning how many.
	readBatch(ms []inDatagram) (n int, err error)
	// close closes the socket, which ends a readBatch that waits.
	close() error
}

// inDatagram is one datagram read: buf is the caller's buffer, of which
// the first n bytes were read, from the address from.
type inDatagram struct {
	buf  []byte
	n    int
	from netip.AddrPort
}

// newInDatagrams returns n buffers able to hold any datagram, and one
// byte more so that an oversized one shows.
func newInDatagrams(n int) []inDatagram {
	ms := make([]inDatagram, n)
	for i := range ms {
		ms[i].buf = make([]byte, MaxDatagram+1)
	}
	return ms
}
