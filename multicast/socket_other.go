//go:build !linux

package multicast

import (
	"net"
	"net/netip"
)

// readBatchLen is how many datagrams one read may return: one, since
// golang.org/x/net/ipv4 batches system calls on Linux only (and not at
// all on Windows).
const readBatchLen = 1

// plainSocket sends and receives one datagram per system call.
type plainSocket struct {
	conn *net.UDPConn
	dst  netip.AddrPort
}

func newSocket(conn *net.UDPConn, dst netip.AddrPort) socket {
	return &plainSocket{conn: conn, dst: dst}
}

func (s *plainSocket) writeBatch(dgs [][]byte) (int, error) {
	for i, d := range dgs {
		if _, err := s.conn.WriteToUDPAddrPort(d, s.dst); err != nil {
			return i, err
		}
	}
	return len(dgs), nil
}

func (s *plainSocket) readBatch(ms []inDatagram) (int, error) {
	n, from, err := s.conn.ReadFromUDPAddrPort(ms[0].buf)
	if err != nil {
		return 0, err
	}
	ms[0].n, ms[0].from = n, from
	return 1, nil
}

func (s *plainSocket) close() error { return s.conn.Close() }
