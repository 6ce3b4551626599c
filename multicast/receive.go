package multicast

import (
	"errors"
	"fmt"
	"math"
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

// handle processes one datagram: every datagram read goes through it.
// recs is scratch space, returned for reuse.
func (l *Link) handle(b []byte, from netip.AddrPort, now time.Time, recs []Record) []Record {
	l.counts.datagramsIn.Add(1)
	l.counts.bytesIn.Add(uint64(len(b)))
	b, ok := l.unseal(b, from, now)
	if !ok {
		return recs
	}
	h, rest, err := ParseHeader(b)
	var target uuid.UUID
	var ranges []SeqRange
	var entries []RepairEntry
	var status []StatusEntry
	if err == nil {
		switch h.Kind {
		case KindData, KindHeartbeat:
			recs, err = ParseRecords(recs, &h, rest, l.cfg.MaxMessage)
		case KindNAK:
			target, ranges, err = ParseNAK(nil, &h, rest)
		case KindRepair:
			entries, err = ParseRepair(nil, &h, rest)
		case KindStatus:
			status, err = ParseStatus(nil, &h, rest)
		}
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
	switch h.Kind {
	case KindStatus:
		l.heardStatus(&h, len(b), status, now)
		return recs
	case KindNAK:
		l.heardNAK(&h, len(b), target, ranges, now)
		return recs
	}
	l.lockRx()
	l.peers.seen(h.Node, len(b), now)
	switch h.Kind {
	case KindData, KindHeartbeat:
		l.putInOrder(&arrival{node: h.Node, seq: h.Seq, h: &h, d: b, recs: recs, from: from}, now)
	case KindRepair:
		l.ord.touch(h.Node, now)
		l.counts.repairsIn.Add(1)
		for _, e := range entries {
			if e.Datagram == nil {
				l.ord.gone(h.Node, e.Gone, now)
				continue
			}
			recs = l.putRepairedInOrder(&h, e.Datagram, recs[:0], now)
		}
	}
	l.afterStream0(h.Node)
	return recs
}

// afterStream0 follows up a datagram of node's stream 0, or a repair of
// it, with l.mu held, which it releases: it arms the repair timer for a
// new gap, delivers what is due, and reports progress.
func (l *Link) afterStream0(node uuid.UUID) {
	kick := l.ord.newGap
	l.ord.newGap = false
	statusNow, statusSoon := l.progressed(l.ord.wins[node])
	pending := len(l.outq) > 0 || len(l.ord.logs) > 0 || len(l.joined) > 0 || len(l.left) > 0
	l.mu.Unlock()
	if kick {
		poke(l.kick)
	}
	if pending {
		l.logAndDeliver()
	}
	if statusNow {
		l.sendStatus()
	}
	if statusSoon {
		poke(l.status.kick)
	}
}

// heardStatus takes a status from a peer: it says the peer is alive,
// and its entry for this node goes to flow control.
func (l *Link) heardStatus(h *Header, size int, status []StatusEntry, now time.Time) {
	l.lockRx()
	l.peers.seen(h.Node, size, now)
	l.ord.touch(h.Node, now)
	l.mu.Unlock()
	l.takeStatus(h.Node, status, now)
}

// heardNAK takes a NAK: addressed to this node, it is answered;
// addressed to another, it holds back this node's own NAKs for the
// ranges it names.
func (l *Link) heardNAK(h *Header, size int, target uuid.UUID, ranges []SeqRange, now time.Time) {
	l.lockRx()
	l.peers.seen(h.Node, size, now)
	l.ord.touch(h.Node, now)
	if target != l.cfg.Node {
		l.ord.heard(target, ranges, now)
	}
	l.mu.Unlock()
	if target == l.cfg.Node {
		l.counts.naksIn.Add(1)
		l.answerNAK(ranges, now)
	}
}

// putRepairedInOrder hands the orderer a datagram that came inside a
// repair from the node of outer; l.mu is held. It must be a valid datagram of stream 0 of the
// same node and cluster, unsealed; one already had is ignored.
func (l *Link) putRepairedInOrder(outer *Header, d []byte, recs []Record, now time.Time) []Record {
	h, rest, err := ParseHeader(d)
	if err == nil {
		recs, err = ParseRecords(recs, &h, rest, l.cfg.MaxMessage)
	}
	if err != nil {
		l.counts.bad(err)
		return recs
	}
	if h.Kind.Stream() != 0 || h.Flags != 0 || h.Node != outer.Node || h.Cluster != outer.Cluster {
		l.counts.malformed.Add(1)
		return recs
	}
	l.putInOrder(&arrival{node: h.Node, seq: h.Seq, h: &h, d: d, recs: recs, repair: true}, now)
	return recs
}

// putInOrder hands a datagram of stream 0 to the orderer, which hands
// it to handleInTurn in its turn; l.mu is held.
func (l *Link) putInOrder(a *arrival, now time.Time) {
	// Stream 0 counts from 1, and never reaches MaxUint64: after it, the
	// window's next number would wrap to 0.
	if a.seq == 0 || a.seq == math.MaxUint64 {
		l.counts.malformed.Add(1)
		return
	}
	l.peers.sequence(a.node, a.seq)
	switch l.ord.arrive(a, now) {
	case arrivalUnordered:
		l.counts.peersFull.Add(1) // more senders than windows: dropped
	case arrivalUnplaced:
		l.counts.malformed.Add(1)
	}
}

// handleInTurn reassembles the records of a datagram of stream 0 in its
// turn, once per sequence number (the orderer sees to it); l.mu is held. h and recs are nil when d must be decoded again (a
// datagram held for its turn, which passed the checks when it arrived).
// Complete data messages are queued for delivery, complete heartbeats
// filed.
func (l *Link) handleInTurn(node uuid.UUID, h *Header, d []byte, recs []Record) {
	if h == nil {
		// It may fail now: a reload may have lowered MaxMessage since
		// it arrived. It is counted as it would have been then.
		hd, rest, err := ParseHeader(d)
		if err != nil {
			l.counts.bad(err)
			return
		}
		l.scratch, err = ParseRecords(l.scratch[:0], &hd, rest, l.cfg.MaxMessage)
		if err != nil {
			l.counts.bad(err)
			return
		}
		h, recs = &hd, l.scratch
	}
	now := time.Now()
	for i := range recs {
		r := &recs[i]
		msg, res := l.ra.add(node, r, now)
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
				l.outq = append(l.outq, delivery{node, msg})
			case KindHeartbeat:
				l.heartbeat(node, msg, now)
			}
		}
	}
}

// heartbeat files a heartbeat; l.mu is held. A new peer is queued in
// l.joined, and one that leaves in l.left, to be logged once the lock
// is released.
func (l *Link) heartbeat(node uuid.UUID, msg []byte, now time.Time) {
	hb, err := ParseHeartbeat(msg)
	if err != nil {
		l.counts.malformed.Add(1)
		return
	}
	l.counts.heartbeats.Add(1)
	if hb.Leaving {
		// Its last datagram, taken in turn: everything it sent before
		// has been processed. Its place in its stream ages out as a
		// silent peer's does.
		if p := l.peers.peers[node]; p != nil {
			l.left = append(l.left, *p)
			delete(l.peers.peers, node)
		}
		if l.flow != nil {
			l.flow.leave(node, now)
		}
		return
	}
	if l.flow != nil {
		l.flow.back(node)
	}
	var from netip.AddrPort
	if w := l.ord.wins[node]; w != nil {
		from = w.from
	}
	isNew, ok := l.peers.heartbeat(node, &hb, from, now)
	if !ok {
		l.counts.peersFull.Add(1)
		return
	}
	if isNew {
		l.joined = append(l.joined, *l.peers.peers[node])
	}
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
	switch h.Kind {
	case KindNAK:
		if target, ranges, err := ParseNAK(nil, h, b[HeaderLen:]); err == nil {
			fmt.Fprintf(&rs, "nak to %v for %v", target, ranges)
		}
	case KindStatus:
		if entries, err := ParseStatus(nil, h, b[HeaderLen:]); err == nil {
			rs.WriteString("status")
			for _, e := range entries {
				fmt.Fprintf(&rs, "; %v at %d, window %d", e.Node, e.Position, e.Window)
			}
		}
	case KindRepair:
		if entries, err := ParseRepair(nil, h, b[HeaderLen:]); err == nil {
			for i, e := range entries {
				if i > 0 {
					rs.WriteString("; ")
				}
				if e.Datagram == nil {
					fmt.Fprintf(&rs, "gone %d..%d", e.Gone.First, e.Gone.Last)
				} else if len(e.Datagram) >= HeaderLen {
					fmt.Fprintf(&rs, "datagram %d, %d bytes", seqOf(e.Datagram), len(e.Datagram))
				}
			}
		}
	}
	for i, r := range recs {
		if i > 0 {
			rs.WriteString("; ")
		}
		fmt.Fprintf(&rs, "%v fragment %d/%d, %d of %d bytes", r.ID, r.Index+1, r.Count, len(r.Payload), r.Total)
	}
	l.log.Info("datagram", "from", from, "bytes", len(b), "kind", h.Kind, "node", h.Node, "seq", h.Seq,
		"cluster", fmt.Sprintf("%x (%s)", h.Cluster[:], who), "records", rs.String())
}
