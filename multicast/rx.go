package multicast

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// rx is a node's receiving state: the peer table, each peer's window in
// its stream 0 (order, gaps, what is held), the messages being
// reassembled, and the queue of messages to deliver. The links of a
// node share it, so that a link that a reload opens beside another
// takes each datagram of a peer once, in order, whichever link reads it
// first, and a reload neither loses nor repeats what arrives while both
// run; the peer table survives the swap. Each link keeps its own
// socket, sealing and counters.
type rx struct {
	mu      sync.Mutex // guards what the read loops and housekeeping share
	ra      *reassembler
	peers   peerTable
	ord     *orderer
	scratch []Record   // for decoding held datagrams again
	outq    []delivery // messages to deliver, in order
	spare   []delivery
	joined  []Peer // peers new since the last log
	left    []Peer // peers that left (Heartbeat.Leaving) since the last log
	// statusPending: a status is asked for soon (report.go).
	statusPending bool

	// deliverMu is held while messages are handed to deliver: whoever
	// takes it delivers everything queued, in order, so that the read
	// loops and housekeeping never reorder what they release.
	deliverMu sync.Mutex
	deliver   func(from uuid.UUID, msg []byte) // the last link's; guarded by deliverMu
}

// receiving returns the node's receiving state, made for the first link
// and set to the bounds of each link opened since: cfg (with its
// defaults), NAKs of at most maxRanges ranges, inTurn and deliver of
// the link being opened.
func (n *Node) receiving(cfg *Config, maxRanges int, inTurn inTurnFunc, deliver func(uuid.UUID, []byte)) *rx {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rx == nil {
		n.rx = &rx{
			ra:    newReassembler(cfg.MaxReassembly, cfg.ReassemblyTimeout),
			peers: peerTable{peers: make(map[uuid.UUID]*Peer)},
			ord:   newOrderer(inTurn, cfg.HoldPeer, cfg.HoldTotal, cfg.GapTimeout, defaultNAKDelay, maxRanges),
		}
	}
	r := n.rx
	r.mu.Lock()
	r.ra.budget, r.ra.timeout = cfg.MaxReassembly, cfg.ReassemblyTimeout
	o := r.ord
	o.holdPeer, o.holdTotal, o.gapTimeout = cfg.HoldPeer, cfg.HoldTotal, cfg.GapTimeout
	o.maxRanges = max(1, min(MaxRecords, maxRanges))
	r.mu.Unlock()
	r.deliverMu.Lock()
	r.deliver = deliver
	r.deliverMu.Unlock()
	return r
}

// lockRx locks the receiving state for this link: what the orderer
// hands on in turn goes through this link's handleInTurn.
func (l *Link) lockRx() {
	l.mu.Lock()
	l.ord.inTurn = l.inTurn
}

// forgetStale drops what the node keeps of peers silent for longer than
// the peer timeout, as housekeeping would have had a link been open: a
// node that reconnects after a while starts afresh with them, as a late
// joiner, instead of asking them for what they sent meanwhile.
func (l *Link) forgetStale(now time.Time) {
	l.lockRx()
	defer l.mu.Unlock()
	l.peers.age(now, l.cfg.PeerTimeout)
	l.ord.age(now, l.cfg.PeerTimeout)
}
