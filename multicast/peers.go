package multicast

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxPeers bounds the peer table: heartbeats from more nodes than this
// are dropped until peers age out.
const maxPeers = 1024

// Peer is another node of the cluster, as its heartbeats describe it.
type Peer struct {
	Node      uuid.UUID
	Host      string
	PID       int
	Version   string
	Channels  []string
	Addr      netip.AddrPort // where its datagrams come from
	FirstSeen time.Time
	LastSeen  time.Time // its last datagram of any kind
	LastSeq   uint64    // the highest sequence number seen from it, of its stream 0 (data and heartbeats)
	Lost      uint64    // datagrams of its stream 0 that never arrived nor were repaired, skipped
	Repaired  uint64    // datagrams of its stream 0 that arrived in a repair after they were found missing
	Datagrams uint64    // datagrams received from it since it joined the table
	Bytes     uint64    // their size
	// Rate is the bytes per second received from it over the last
	// heartbeat interval.
	Rate float64
	// Flow is what it reported, as a receiver of this node's stream 0.
	Flow FlowPeer

	rateBytes uint64    // Bytes when Rate was last measured
	rateAt    time.Time // when
}

// peerTable holds the peers heard from. It is not safe for concurrent use.
type peerTable struct {
	peers map[uuid.UUID]*Peer
}

// heartbeat records a heartbeat from node and reports whether the node is
// new. It returns false, false when the table is full.
func (t *peerTable) heartbeat(node uuid.UUID, hb *Heartbeat, from netip.AddrPort, now time.Time) (isNew, ok bool) {
	p := t.peers[node]
	if p == nil {
		if len(t.peers) >= maxPeers {
			return false, false
		}
		p = &Peer{Node: node, FirstSeen: now}
		t.peers[node] = p
		isNew = true
	}
	p.Host, p.PID, p.Version, p.Addr, p.LastSeen = hb.Host, hb.PID, hb.Version, from, now
	p.Channels = hb.Channels
	return isNew, true
}

// seen records any datagram of a known peer, of size bytes.
func (t *peerTable) seen(node uuid.UUID, size int, now time.Time) {
	p := t.peers[node]
	if p == nil {
		return
	}
	p.LastSeen = now
	p.Datagrams++
	p.Bytes += uint64(size)
}

// sequence records the sequence number of a datagram of a known peer's
// stream 0.
func (t *peerTable) sequence(node uuid.UUID, seq uint64) {
	if p := t.peers[node]; p != nil {
		p.LastSeq = max(p.LastSeq, seq)
	}
}

// age removes the peers silent for longer than timeout and returns them,
// and measures the others' rates.
func (t *peerTable) age(now time.Time, timeout time.Duration) []Peer {
	var gone []Peer
	for id, p := range t.peers {
		if !p.rateAt.IsZero() && now.After(p.rateAt) {
			p.Rate = float64(p.Bytes-p.rateBytes) / now.Sub(p.rateAt).Seconds()
		}
		p.rateBytes, p.rateAt = p.Bytes, now
		if now.Sub(p.LastSeen) > timeout {
			gone = append(gone, *p)
			delete(t.peers, id)
		}
	}
	return gone
}

// list returns copies of the peers sorted by host name, then node id.
func (t *peerTable) list() []Peer {
	out := make([]Peer, 0, len(t.peers))
	for _, p := range t.peers {
		c := *p
		c.Channels = slices.Clone(p.Channels)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Peer) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Node.String(), b.Node.String())
	})
	return out
}
