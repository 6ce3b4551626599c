package multicast

import (
	"errors"
	"sync/atomic"
)

// Stats are a link's counters since it opened.
type Stats struct {
	DatagramsSent uint64 // datagrams written, fragments and heartbeats included
	BytesSent     uint64
	MessagesSent  uint64 // data messages sent
	SendErrors    uint64 // datagrams the system refused to send
	QueueFull     uint64 // data messages dropped because the send queue stayed full (ErrQueueFull)
	Unsent        uint64 // messages still queued when the link closed, not written in time

	DatagramsReceived uint64 // every datagram read, good or bad
	BytesReceived     uint64
	Delivered         uint64 // data messages handed to the deliver function
	Heartbeats        uint64 // heartbeats received from other nodes

	Own          uint64 // this node's own datagrams, ignored; on Linux a socket filter drops them unread, uncounted, unless Config.Dump is set
	OtherCluster uint64 // datagrams of another cluster, ignored

	// Datagrams dropped as bad, by reason.
	Truncated  uint64 // shorter than their header or records say
	BadMagic   uint64 // not starting with "nc"
	BadVersion uint64 // of another format version
	BadKind    uint64 // of an unknown kind or with unknown flags
	Malformed  uint64 // other layout errors, and heartbeats that do not decode
	// Fragments dropped.
	BadFragment uint64 // absurd counts, indexes or lengths, or contradicting the message's other fragments
	NoRoom      uint64 // whose message cannot fit the reassembly bound
	Duplicates  uint64 // messages or fragments already received
	Expired     uint64 // incomplete messages dropped after the reassembly timeout
	Evicted     uint64 // incomplete messages dropped to make room for others
	PeersFull   uint64 // heartbeats ignored because the peer table is full

	// Datagrams dropped by sealing (Config.Key), before their records
	// are read.
	Unsealed uint64 // not sealed, while this node has a key
	Sealed   uint64 // sealed, while this node has no key
	Forged   uint64 // sealed, but failing authentication: sealed with another key, or changed on the way
	Replayed uint64 // sealed and authentic, but accepted before, or older than the sender's replay window
	// Loss repair and order (stream 0 of each peer: data and heartbeats).
	Lost          uint64 // datagrams of peers that never arrived nor were repaired: skipped after GapTimeout, when their sender no longer held them, when the hold buffer was full, or when the peer fell silent
	Repaired      uint64 // datagrams found missing that then arrived in a repair
	OutOfOrder    uint64 // datagrams that arrived ahead of a missing one, and were held for their turn
	Late          uint64 // datagrams that arrived after their turn: again, or after their gap was skipped
	NAKsSent      uint64 // NAKs multicast, each asking one peer for ranges it missed
	NAKsReceived  uint64 // NAKs addressed to this node
	NAKsHeard     uint64 // gaps whose NAK this node held back, having heard another node NAK them
	RepairsSent   uint64 // repair datagrams sent in answer to NAKs
	Resent        uint64 // datagrams resent inside them
	Unavailable   uint64 // sequence numbers asked for that the history no longer held, answered "gone"
	RepairLimited uint64 // NAK answers cut short by the repair rate (Config.RepairRate)
	RepairsIn     uint64 // repair datagrams received from other nodes
	CtlDropped    uint64 // NAKs and repairs dropped because too many waited for the writer
	HeldBytes     int    // charged now for datagrams held out of order (bounded by Config.HoldTotal)
	HeldPeak      int    // the most ever charged
	Gaps          int    // ranges of peers' sequence numbers missing now
	HistoryBytes  int    // bytes of sent datagrams the history holds now (bounded by its limit)
	HistoryCount  int    // datagrams it holds

	ReassemblyBytes int // held now for incomplete messages
	ReassemblyPeak  int // the most ever held
	Incomplete      int // incomplete messages held now
	Peers           int // peers in the table now
	QueueBytes      int // charged now to the send queue: messages queued or being written
	QueuePeak       int // the most ever charged
}

// Dropped is the number of datagrams and fragments dropped as bad or
// unplaceable, ignoring own and other clusters' datagrams, duplicates,
// late datagrams and losses.
func (s Stats) Dropped() uint64 {
	return s.Truncated + s.BadMagic + s.BadVersion + s.BadKind + s.Malformed + s.BadFragment + s.NoRoom
}

// counters are the atomically updated part of Stats.
type counters struct {
	datagramsSent, bytesSent, messagesSent, sendErrors atomic.Uint64
	queueFull, unsent                                  atomic.Uint64
	datagramsIn, bytesIn, delivered, heartbeats        atomic.Uint64
	own, otherCluster                                  atomic.Uint64
	truncated, badMagic, badVersion, badKind           atomic.Uint64
	malformed, badFragment, noRoom, duplicates         atomic.Uint64
	peersFull                                          atomic.Uint64
	unsealed, sealed, forged, replayed                 atomic.Uint64
	naksSent, naksIn, repairsSent, resent, repairsIn   atomic.Uint64
	unavailable, repairLimited, ctlDropped             atomic.Uint64
}

// bad counts a datagram the decoder refused.
func (c *counters) bad(err error) {
	switch {
	case errors.Is(err, ErrTruncated):
		c.truncated.Add(1)
	case errors.Is(err, ErrMagic):
		c.badMagic.Add(1)
	case errors.Is(err, ErrVersion):
		c.badVersion.Add(1)
	case errors.Is(err, ErrKind):
		c.badKind.Add(1)
	case errors.Is(err, ErrFragment):
		c.badFragment.Add(1)
	default:
		c.malformed.Add(1)
	}
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	c := &l.counts
	s := Stats{
		DatagramsSent: c.datagramsSent.Load(), BytesSent: c.bytesSent.Load(),
		MessagesSent: c.messagesSent.Load(), SendErrors: c.sendErrors.Load(),
		QueueFull: c.queueFull.Load(), Unsent: c.unsent.Load(),
		DatagramsReceived: c.datagramsIn.Load(), BytesReceived: c.bytesIn.Load(),
		Delivered: c.delivered.Load(), Heartbeats: c.heartbeats.Load(),
		Own: c.own.Load(), OtherCluster: c.otherCluster.Load(),
		Truncated: c.truncated.Load(), BadMagic: c.badMagic.Load(), BadVersion: c.badVersion.Load(),
		BadKind: c.badKind.Load(), Malformed: c.malformed.Load(),
		BadFragment: c.badFragment.Load(), NoRoom: c.noRoom.Load(), Duplicates: c.duplicates.Load(),
		PeersFull: c.peersFull.Load(),
		Unsealed:  c.unsealed.Load(), Sealed: c.sealed.Load(), Forged: c.forged.Load(), Replayed: c.replayed.Load(),
		NAKsSent: c.naksSent.Load(), NAKsReceived: c.naksIn.Load(), RepairsSent: c.repairsSent.Load(),
		Resent: c.resent.Load(), Unavailable: c.unavailable.Load(), RepairLimited: c.repairLimited.Load(),
		RepairsIn: c.repairsIn.Load(), CtlDropped: c.ctlDropped.Load(),
	}
	hs := l.hist.Stats()
	s.HistoryBytes, s.HistoryCount = hs.Bytes, hs.Datagrams
	l.q.mu.Lock()
	s.QueueBytes, s.QueuePeak = l.q.charged, l.q.peak
	l.q.mu.Unlock()
	l.mu.Lock()
	s.Expired, s.Evicted = l.ra.expired, l.ra.evicted
	s.ReassemblyBytes, s.ReassemblyPeak, s.Incomplete = l.ra.bytes, l.ra.peak, l.ra.pending()
	s.Peers = len(l.peers.peers)
	o := l.ord
	s.Lost, s.Repaired, s.OutOfOrder, s.Late, s.NAKsHeard = o.lost, o.repaired, o.outOfOrder, o.dup, o.suppressed
	s.HeldBytes, s.HeldPeak = o.held, o.peak
	for _, w := range o.wins {
		s.Gaps += len(w.gaps)
	}
	l.mu.Unlock()
	return s
}
