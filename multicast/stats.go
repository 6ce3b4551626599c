package multicast

import (
	"errors"
	"sync/atomic"
)

// Stats are a link's counters: its node's, since the node's first link
// opened, so that they go on across a reload that swaps the link. They
// are the one table
// of the network's counters, with the server's own (router.NetStats):
// each field's tags say where it is shown. stats names it in the
// network part of the server's control answer stats (no stats tag: not
// shown; fields of one name are shown summed). metric names its
// Prometheus metric, label the label (name=value) of its series (fields
// of one series are exported summed), and help, on one field of each
// metric, describes it (no metric tag: not exported). An int field is a
// value now (a gauge), a uint64 field a count since the node's first
// link opened.
type Stats struct {
	// datagrams written, fragments and heartbeats included
	DatagramsSent uint64 `stats:"datagrams_sent" metric:"netcluster_net_datagrams_total" label:"direction=out" help:"Datagrams sent (direction=\"out\") and received (direction=\"in\", good or bad)."`
	BytesSent     uint64 `stats:"bytes_sent" metric:"netcluster_net_bytes_total" label:"direction=out" help:"Bytes of the datagrams sent and received."`
	// data messages sent
	MessagesSent uint64 `stats:"messages_sent" metric:"netcluster_net_events_total" label:"direction=out" help:"Events sent to the group (direction=\"out\") and delivered from it to a local channel (direction=\"in\")."`
	// datagrams the system refused to send
	SendErrors uint64 `stats:"send_errors" metric:"netcluster_net_dropped_total" label:"reason=send_failed"`
	// data messages dropped because the send queue stayed full (ErrQueueFull)
	QueueFull uint64 `stats:"queue_full"`
	// messages still queued when the link closed, not written in time
	Unsent uint64 `stats:"unsent" metric:"netcluster_net_dropped_total" label:"reason=unsent"`

	// every datagram read, good or bad
	DatagramsReceived uint64 `stats:"datagrams_received" metric:"netcluster_net_datagrams_total" label:"direction=in"`
	BytesReceived     uint64 `stats:"bytes_received" metric:"netcluster_net_bytes_total" label:"direction=in"`
	Delivered         uint64 // data messages handed to the deliver function
	// heartbeats received from other nodes
	Heartbeats uint64 `stats:"heartbeats"`

	// this node's own datagrams, ignored; on Linux a socket filter drops them unread, uncounted, unless Config.Dump is set
	Own uint64 `stats:"own" metric:"netcluster_net_ignored_total" label:"reason=own" help:"Datagrams and events from the network set aside, by reason: own, other_cluster, duplicate, no_channel, refused."`
	// datagrams of another cluster, ignored
	OtherCluster uint64 `stats:"other_cluster" metric:"netcluster_net_ignored_total" label:"reason=other_cluster"`

	// Datagrams dropped as bad, by reason.
	// shorter than their header or records say
	Truncated uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=truncated" help:"Datagrams, fragments and events from the network dropped as bad or unplaceable, and sends that failed, by reason."`
	// not starting with "nc"
	BadMagic uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=bad_magic"`
	// of another format version
	BadVersion uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=bad_version"`
	// of an unknown kind or with unknown flags
	BadKind uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=bad_kind"`
	// other layout errors, heartbeats that do not decode, and datagrams of stream 0 numbered 0 or MaxUint64 (or that the orderer cannot place)
	Malformed uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=malformed"`
	// Fragments dropped.
	// absurd counts, indexes or lengths, or contradicting the message's other fragments
	BadFragment uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=bad_fragment"`
	// whose message cannot fit the reassembly bound
	NoRoom uint64 `stats:"dropped" metric:"netcluster_net_dropped_total" label:"reason=no_room"`
	// messages or fragments already received
	Duplicates uint64 `stats:"duplicates" metric:"netcluster_net_ignored_total" label:"reason=duplicate"`
	// incomplete messages dropped after the reassembly timeout
	Expired uint64 `stats:"expired" metric:"netcluster_net_dropped_total" label:"reason=expired"`
	// incomplete messages dropped to make room for others
	Evicted   uint64 `stats:"evicted" metric:"netcluster_net_dropped_total" label:"reason=evicted"`
	PeersFull uint64 // heartbeats ignored because the peer table is full

	// Datagrams dropped by sealing (Config.Key), before their records
	// are read.
	// not sealed, while this node has a key
	Unsealed uint64 `stats:"unsealed" metric:"netcluster_net_seal_dropped_total" label:"reason=unsealed" help:"Datagrams dropped by sealing, by reason: unsealed (this server has a key), sealed (it has none), forged (failing authentication), replayed."`
	// sealed, while this node has no key
	Sealed uint64 `stats:"sealed" metric:"netcluster_net_seal_dropped_total" label:"reason=sealed"`
	// sealed, but failing authentication: sealed with another key, or changed on the way
	Forged uint64 `stats:"forged" metric:"netcluster_net_seal_dropped_total" label:"reason=forged"`
	// sealed and authentic, but accepted before, or older than the sender's replay window
	Replayed uint64 `stats:"replayed" metric:"netcluster_net_seal_dropped_total" label:"reason=replayed"`
	// Loss repair and order (stream 0 of each peer: data and heartbeats).
	// datagrams of peers that never arrived nor were repaired: skipped after GapTimeout, when their sender no longer held them, when the hold buffer was full, or when the peer fell silent
	Lost uint64 `stats:"lost" metric:"netcluster_net_lost_datagrams_total" help:"Datagrams of peers that never arrived nor were repaired, skipped."`
	// datagrams found missing that then arrived in a repair
	Repaired uint64 `stats:"repaired" metric:"netcluster_net_repair_total" label:"event=repaired" help:"Loss repair: datagrams repaired (event=\"repaired\"), held out of order (\"out_of_order\"), late, NAKs sent, received, and heard from others (\"nak_heard\"), repairs sent, datagrams resent, sequence numbers answered unavailable, NAK answers cut by the rate (\"limited\"), repairs received, NAKs and repairs dropped unsent (\"ctl_dropped\")."`
	// datagrams that arrived ahead of a missing one, and were held for their turn
	OutOfOrder uint64 `stats:"out_of_order" metric:"netcluster_net_repair_total" label:"event=out_of_order"`
	// datagrams that arrived after their turn: again, or after their gap was skipped
	Late uint64 `stats:"late" metric:"netcluster_net_repair_total" label:"event=late"`
	// NAKs multicast, each asking one peer for ranges it missed
	NAKsSent uint64 `stats:"naks_sent" metric:"netcluster_net_repair_total" label:"event=nak_sent"`
	// NAKs addressed to this node
	NAKsReceived uint64 `stats:"naks_received" metric:"netcluster_net_repair_total" label:"event=nak_received"`
	// gaps whose NAK this node held back, having heard another node NAK them
	NAKsHeard uint64 `stats:"naks_heard" metric:"netcluster_net_repair_total" label:"event=nak_heard"`
	// repair datagrams sent in answer to NAKs
	RepairsSent uint64 `stats:"repairs_sent" metric:"netcluster_net_repair_total" label:"event=repair_sent"`
	// datagrams resent inside them
	Resent uint64 `stats:"resent" metric:"netcluster_net_repair_total" label:"event=resent"`
	// sequence numbers asked for that the history no longer held, answered "gone"
	Unavailable uint64 `stats:"unavailable" metric:"netcluster_net_repair_total" label:"event=unavailable"`
	// NAK answers cut short by the repair rate (Config.RepairRate)
	RepairLimited uint64 `stats:"repair_limited" metric:"netcluster_net_repair_total" label:"event=limited"`
	// repair datagrams received from other nodes
	RepairsIn uint64 `stats:"repairs_received" metric:"netcluster_net_repair_total" label:"event=repair_received"`
	// NAKs and repairs dropped because too many waited for the writer
	CtlDropped uint64 `stats:"ctl_dropped" metric:"netcluster_net_repair_total" label:"event=ctl_dropped"`
	// Flow control (flow.go, report.go).
	// statuses multicast, reporting this node's progress in its peers' streams
	StatusSent uint64 `stats:"status_sent" metric:"netcluster_net_flow_total" label:"event=status_sent" help:"Flow control: statuses sent (event=\"status_sent\") and received, times the sender waited for a receiver's window (\"held\"), receivers left out after peertimeout without a status (\"excluded\")."`
	// statuses received from peers
	StatusReceived uint64 `stats:"status_received" metric:"netcluster_net_flow_total" label:"event=status_received"`
	// times the writer waited because a live receiver's window was full
	FlowHeld uint64 `stats:"flow_held" metric:"netcluster_net_flow_total" label:"event=held"`
	// milliseconds the writer spent waiting for receivers' windows
	FlowHeldMs uint64 `stats:"flow_held_ms" metric:"netcluster_net_flow_held_milliseconds_total" help:"Time the sender waited for its receivers' windows, in milliseconds."`
	// receivers left out of flow control after PeerTimeout without a status
	FlowExcluded uint64 `stats:"flow_excluded" metric:"netcluster_net_flow_total" label:"event=excluded"`
	// receivers that hold this sender back now
	FlowReceivers int `stats:"flow_receivers" metric:"netcluster_net_flow_receivers" help:"Receivers that flow control waits for now."`
	// the window this node announces in its statuses, in datagrams
	Window int `stats:"window"`
	// datagrams freed from the history because every live receiver had them
	HistoryReleased uint64 `stats:"history_released"`
	// charged now for datagrams held out of order (bounded by Config.HoldTotal)
	HeldBytes int `stats:"held_bytes" metric:"netcluster_net_held_bytes" help:"Bytes held for datagrams that arrived ahead of a missing one."`
	// the most ever charged
	HeldPeak int `stats:"held_peak"`
	// ranges of peers' sequence numbers missing now
	Gaps int `stats:"gaps"`
	// bytes of sent datagrams the history holds now (bounded by its limit)
	HistoryBytes int `stats:"history_bytes" metric:"netcluster_net_history_bytes" help:"Bytes of sent datagrams kept to answer NAKs."`
	// datagrams it holds
	HistoryCount int `stats:"history_datagrams"`

	// held now for incomplete messages
	ReassemblyBytes int `stats:"reassembly_bytes" metric:"netcluster_net_reassembly_bytes" help:"Bytes held for incomplete fragmented messages."`
	ReassemblyPeak  int // the most ever held
	Incomplete      int // incomplete messages held now
	// peers in the table now
	Peers int `stats:"peers" metric:"netcluster_net_peers" help:"Servers of the cluster heard from lately."`
	// charged now to the send queue: messages queued or being written
	QueueBytes int `stats:"queue_bytes" metric:"netcluster_net_send_queue_bytes" help:"Bytes charged to the multicast send queue: messages queued or being written."`
	// the most ever charged
	QueuePeak int `stats:"queue_peak"`
}

// Dropped is the number of datagrams and fragments dropped as bad or
// unplaceable, ignoring own and other clusters' datagrams, duplicates,
// late datagrams and losses: the sum of the fields tagged stats:"dropped".
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
	statusSent, statusIn, flowHeld                     atomic.Uint64
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

// Stats returns the link's counters, which are its node's.
func (l *Link) Stats() Stats {
	c := l.counts
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
		StatusSent: c.statusSent.Load(), StatusReceived: c.statusIn.Load(), FlowHeld: c.flowHeld.Load(),
	}
	s.Window = int(l.window)
	if l.flow != nil {
		held, excluded, live := l.flow.stats()
		s.FlowHeldMs, s.FlowExcluded, s.FlowReceivers = uint64(held.Milliseconds()), excluded, live
	}
	hs := l.hist.Stats()
	s.HistoryBytes, s.HistoryCount, s.HistoryReleased = hs.Bytes, hs.Datagrams, hs.Released
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
