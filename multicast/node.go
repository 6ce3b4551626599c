package multicast

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// Node is what a node keeps across the links it opens: a reload that
// swaps a link for another (a new interface, port or key) opens the new
// one from the same Node, so that peers see one unbroken node. It owns
//
//   - the sequence counters of both streams: links running side by side
//     for a moment number their datagrams in one series, so that no
//     (stream, number) pair is used twice and no peer sees a rewind;
//   - the history of sent datagrams: NAKs for what a replaced link sent
//     are still answered;
//   - the flow-control state: what each receiver reported, who is live;
//   - the receiving state (rx.go): the peer table, each peer's place in
//     its stream, what is held and reassembled. Each datagram of a peer
//     is processed once, in order, whichever link reads it: a reload
//     neither loses nor repeats what arrives while two links run.
//
// A message is delivered through the deliver function of the link
// opened last. The node drops nothing by message id: a caller that
// takes the same events from another kind of link drops ids across
// them. A Node is safe for concurrent use.
type Node struct {
	id          uuid.UUID
	seq, ctlSeq atomic.Uint64
	hist        *History
	flow        *flow
	counts      counters   // the links' Stats
	mu          sync.Mutex // guards rx
	rx          *rx        // made by the first link
}

// NewNode returns the state of node id, with a history of historyBytes
// (0 or less keeps none).
func NewNode(id uuid.UUID, historyBytes int) *Node {
	return &Node{id: id, hist: NewHistory(historyBytes), flow: newFlow()}
}

// ID is the node's id.
func (n *Node) ID() uuid.UUID { return n.id }

// History is the node's history of sent datagrams: SetLimit resizes it
// in place.
func (n *Node) History() *History { return n.hist }

// Moved forgets every receiver of the node's flow control: its links
// now send to another cluster, group or port (a reload), where the
// receivers that reported so far hear them no more. Those there join as
// late joiners do, from their first report; without this, the ones left
// behind would hold the sender back until PeerTimeout.
func (n *Node) Moved() { n.flow.forget() }

// Open opens a link of this node: cfg.Node must be the node's id, or
// zero for it. Its HistoryBytes is ignored: the node's history serves.
func (n *Node) Open(cfg Config, deliver func(from uuid.UUID, msg []byte)) (*Link, error) {
	if cfg.Node == (uuid.UUID{}) {
		cfg.Node = n.id
	}
	if cfg.Node != n.id {
		return nil, errors.New("multicast: the link's node id is not the node's")
	}
	return open(cfg, n, deliver)
}
