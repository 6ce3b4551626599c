package multicast

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// How a link seals and opens. The writer seals every datagram at the
// socket (sealingSocket), whatever its kind, so nothing leaves unsealed;
// the read loop opens every datagram first thing in handle (unseal),
// before anything reads its records.

// maxForgedLogged bounds the senders whose failing datagrams are logged:
// the first failure of each (address, node) is logged once, and past this
// many, failures are only counted.
const maxForgedLogged = 64

// sealState is the read goroutine's sealing state.
type sealState struct {
	nonce  [NonceLen]byte
	replay *replayGuard
	logged map[forgedFrom]struct{}
	noKey  bool // "this node has no key" was logged
	noSeal bool // "this node has a key" was logged
}

// forgedFrom is where a datagram that failed authentication came from.
type forgedFrom struct {
	addr netip.Addr
	node uuid.UUID
}

// sealingSocket seals each datagram on its way to the socket, into
// buffers of its own that it reuses: the writer's plain datagrams stay as
// they are.
type sealingSocket struct {
	socket
	s     *Sealer
	nonce [NonceLen]byte
	bufs  [][]byte
	out   [][]byte
}

func (s *sealingSocket) writeBatch(dgs [][]byte) (int, error) {
	for len(s.bufs) < len(dgs) {
		s.bufs = append(s.bufs, nil)
	}
	out := s.out[:0]
	var err error
	for i, d := range dgs {
		var sealed []byte
		if sealed, err = s.s.seal(s.bufs[i][:0], d, &s.nonce); err != nil {
			break
		}
		s.bufs[i] = sealed
		out = append(out, sealed)
	}
	s.out = out
	n, werr := s.socket.writeBatch(out)
	if werr != nil || err == nil {
		return n, werr
	}
	return n, fmt.Errorf("multicast: sealing a datagram: %w", err)
}

// unseal checks a datagram against the node's key before handle reads
// it. Without a key, a sealed datagram is dropped; with one, an unsealed
// datagram is dropped, and a sealed one is opened in place, dropped when
// it fails authentication or was accepted before, and returned plain
// (FlagSealed cleared) otherwise. A datagram whose header does not
// decode, or an unsealed one of another cluster, is returned as it is,
// for handle to count. ok is false when the datagram was dropped here,
// and counted.
func (l *Link) unseal(b []byte, from netip.AddrPort, now time.Time) (plain []byte, ok bool) {
	st := &l.sealing
	h, _, err := ParseHeader(b)
	if err != nil {
		return b, true
	}
	sealed := h.Flags&FlagSealed != 0
	switch {
	case h.Cluster != l.cluster:
		if !sealed {
			return b, true
		}
		l.counts.otherCluster.Add(1)
		l.dumpRefused(b, from, &h, "another cluster")
		return nil, false
	case l.sealer == nil && !sealed:
		return b, true
	case l.sealer == nil:
		return l.refuse(&l.counts.sealed, b, from, &h, "sealed, and this node has no key", &st.noKey,
			"sealed datagram dropped: this node has no key; set the cluster's key or keyfile to hear it")
	case !sealed:
		return l.refuse(&l.counts.unsealed, b, from, &h, "unsealed, and this node has a key", &st.noSeal,
			"unsealed datagram dropped: this node has a key, and the sender seals nothing; set the same key or keyfile on every node")
	}
	plain, err = l.sealer.open(b[:0], b, &st.nonce)
	if err != nil {
		if !errors.Is(err, ErrForged) {
			l.counts.bad(err)
			l.dumpRefused(b, from, &h, err.Error())
			return nil, false
		}
		l.counts.forged.Add(1)
		l.dumpRefused(b, from, &h, "fails authentication")
		src := forgedFrom{from.Addr(), h.Node}
		if _, seen := st.logged[src]; !seen && len(st.logged) < maxForgedLogged {
			st.logged[src] = struct{}{}
			l.log.Warn("sealed datagram fails authentication: is its key different?", "from", from, "node", h.Node)
		}
		return nil, false
	}
	stream, _ := streamOf(h.Kind)
	if stream == 0 && h.Seq == math.MaxUint64 {
		// No sender reaches it (putInOrder refuses it too); taken, it
		// would move the replay window to the top, and every later
		// datagram of the sender would count as replayed.
		l.counts.malformed.Add(1)
		l.dumpRefused(plain, from, &h, "numbered past the last number")
		return nil, false
	}
	if h.Node != l.cfg.Node && !st.replay.accept(h.Node, stream, h.Seq, now) {
		l.counts.replayed.Add(1)
		l.dumpRefused(plain, from, &h, "replayed")
		return nil, false
	}
	return plain, true
}

// refuse drops a datagram that unseal does not take, counting it in n,
// and logs msg the first time (*logged false).
func (l *Link) refuse(n *atomic.Uint64, b []byte, from netip.AddrPort, h *Header, why string, logged *bool, msg string) ([]byte, bool) {
	n.Add(1)
	l.dumpRefused(b, from, h, why)
	if !*logged {
		*logged = true
		l.log.Warn(msg, "from", from, "node", h.Node)
	}
	return nil, false
}

// dumpRefused shows a datagram that unseal dropped, when Config.Dump is
// set.
func (l *Link) dumpRefused(b []byte, from netip.AddrPort, h *Header, why string) {
	if !l.cfg.Dump {
		return
	}
	l.log.Info("datagram", "from", from, "bytes", len(b), "kind", h.Kind, "node", h.Node, "seq", h.Seq,
		"cluster", fmt.Sprintf("%x", h.Cluster[:]), "dropped", why)
}

// sealRoom is what sealing with key takes of each datagram.
func sealRoom(key []byte) int {
	if len(key) > 0 {
		return TagLen
	}
	return 0
}
