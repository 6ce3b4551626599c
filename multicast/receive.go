package multicast

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
)

// readLoop reads datagrams until the link closes, several per system
// call where the platform allows.
func (l *Link) readLoop() {
	defer l.wg.Done()
	ms := newInDatagrams(readBatchLen)
	var recs []Record
	for {
		n, err := l.sock.readBatch(ms)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.stopped() {
				return
			}
			l.log.Warn("reading from the multicast socket failed", "err", err)
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		now := time.Now()
		for _, m := range ms[:n] {
			recs = l.handle(m.buf[:m.n], m.from, now, recs[:0])
		}
	}
}

// stopped reports whether Close has been called.
func (l *Link) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// delivery is a message ready to hand over once the lock is released.
type delivery struct {
	from uuid.UUID
	msg  []byte
}

// handle processes one datagram. recs is scratch space, returned for
// reuse.
func (l *Link) handle(b []byte, from netip.AddrPort, now time.Time, recs []Record) []Record {
	l.counts.datagramsIn.Add(1)
	l.counts.bytesIn.Add(uint64(len(b)))
	b, ok := l.unseal(b, from, now)
	if !ok {
		return recs
	}
	h, rest, err := ParseHeader(b)
	if err == nil {
		recs, err = ParseRecords(recs, &h, rest, l.cfg.MaxMessage)
	}
	if l.cfg.Dump {
		hc := h // a copy, so that h itself stays off the heap
		l.dump(b, from, &hc, recs, err)
	}
	if err != nil {
		l.counts.bad(err)
		return recs
	}
	if h.Node == l.cfg.Node {
		l.counts.own.Add(1)
		return recs
	}
	if h.Cluster != l.cluster {
		l.counts.otherCluster.Add(1)
		return recs
	}
	var out []delivery
	var joined []Peer
	l.mu.Lock()
	l.counts.lost.Add(l.peers.seen(h.Node, h.Seq, len(b), now))
	for i := range recs {
		r := &recs[i]
		if h.Kind == KindData && l.recent.Has(r.ID) {
			l.counts.duplicates.Add(1)
			continue
		}
		msg, res := l.ra.add(h.Node, r, now)
		switch res {
		case fragDuplicate:
			l.counts.duplicates.Add(1)
		case fragBad:
			l.counts.badFragment.Add(1)
		case fragNoRoom:
			l.counts.noRoom.Add(1)
		case fragComplete:
			switch h.Kind {
			case KindData:
				l.recent.Add(r.ID)
				out = append(out, delivery{h.Node, msg})
			case KindHeartbeat:
				if p, ok := l.heartbeat(h.Node, msg, from, now); ok {
					joined = append(joined, p)
				}
			}
		}
	}
	l.mu.Unlock()
	for _, p := range joined {
		l.log.Info("peer joined", "peer", p.Node, "host", p.Host, "pid", p.PID, "version", p.Version, "from", p.Addr, "channels", strings.Join(p.Channels, ","))
	}
	for _, d := range out {
		l.counts.delivered.Add(1)
		l.deliver(d.from, d.msg)
	}
	return recs
}

// heartbeat files a heartbeat; l.mu is held. It returns the peer when it
// is new.
func (l *Link) heartbeat(node uuid.UUID, msg []byte, from netip.AddrPort, now time.Time) (Peer, bool) {
	hb, err := ParseHeartbeat(msg)
	if err != nil {
		l.counts.malformed.Add(1)
		return Peer{}, false
	}
	l.counts.heartbeats.Add(1)
	isNew, ok := l.peers.heartbeat(node, &hb, from, now)
	if !ok {
		l.counts.peersFull.Add(1)
		return Peer{}, false
	}
	if !isNew {
		return Peer{}, false
	}
	return *l.peers.peers[node], true
}

// maxDumpHead is how many bytes of a bad datagram dumpnet shows.
const maxDumpHead = 48

// dump logs one datagram received, in a readable form.
func (l *Link) dump(b []byte, from netip.AddrPort, h *Header, recs []Record, err error) {
	if err != nil {
		head := b[:min(len(b), maxDumpHead)]
		l.log.Info("datagram", "from", from, "bytes", len(b), "err", err, "head", fmt.Sprintf("%x", head))
		return
	}
	var who string
	switch {
	case h.Node == l.cfg.Node:
		who = "own"
	case h.Cluster != l.cluster:
		who = "other cluster"
	default:
		who = "cluster"
	}
	var rs strings.Builder
	for i, r := range recs {
		if i > 0 {
			rs.WriteString("; ")
		}
		fmt.Fprintf(&rs, "%v fragment %d/%d, %d of %d bytes", r.ID, r.Index+1, r.Count, len(r.Payload), r.Total)
	}
	l.log.Info("datagram", "from", from, "bytes", len(b), "kind", h.Kind, "node", h.Node, "seq", h.Seq,
		"cluster", fmt.Sprintf("%x (%s)", h.Cluster[:], who), "records", rs.String())
}
