package multicast

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// readBatchLen is how many datagrams one read may return: recvmmsg(2)
// moves several per system call on Linux.
const readBatchLen = 16

// batchSocket sends and receives with sendmmsg(2) and recvmmsg(2).
type batchSocket struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	dst  *net.UDPAddr
	wms  []ipv4.Message
	wbuf [][1][]byte
	rms  []ipv4.Message
	rbuf [][1][]byte
}

func newSocket(conn *net.UDPConn, dst netip.AddrPort) socket {
	return &batchSocket{conn: conn, pc: ipv4.NewPacketConn(conn), dst: net.UDPAddrFromAddrPort(dst)}
}

func (s *batchSocket) writeBatch(dgs [][]byte) (int, error) {
	for len(s.wms) < len(dgs) {
		s.wms = append(s.wms, ipv4.Message{})
		s.wbuf = append(s.wbuf, [1][]byte{})
	}
	for i, d := range dgs {
		s.wbuf[i][0] = d
		s.wms[i] = ipv4.Message{Buffers: s.wbuf[i][:], Addr: s.dst}
	}
	sent := 0
	for sent < len(dgs) {
		n, err := s.pc.WriteBatch(s.wms[sent:len(dgs)], 0)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func (s *batchSocket) readBatch(ms []inDatagram) (int, error) {
	for len(s.rms) < len(ms) {
		s.rms = append(s.rms, ipv4.Message{})
		s.rbuf = append(s.rbuf, [1][]byte{})
	}
	for i := range ms {
		s.rbuf[i][0] = ms[i].buf
		s.rms[i] = ipv4.Message{Buffers: s.rbuf[i][:]}
	}
	n, err := s.pc.ReadBatch(s.rms[:len(ms)], 0)
	for i := range n {
		ms[i].n = s.rms[i].N
		ms[i].from = netip.AddrPort{}
		if a, ok := s.rms[i].Addr.(*net.UDPAddr); ok {
			ap := a.AddrPort()
			ms[i].from = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return n, err
}

func (s *batchSocket) close() error { return s.conn.Close() }
