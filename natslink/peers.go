package natslink

import (
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Peer is another server heard over NATS.
type Peer struct {
	Node      uuid.UUID
	Host      string
	PID       int
	Version   string
	Channels  []string
	FirstSeen time.Time
	LastSeen  time.Time // its last heartbeat
	Msgs      uint64    // events received from it
	Bytes     uint64    // their data's size
	Missed    uint64    // its events that never came (Stats.MissedIn)
}

// maxPeers bounds the peer table.
const maxPeers = 1024

// peerTable holds the peers heard from; it is safe for concurrent use.
type peerTable struct {
	mu    sync.Mutex
	peers map[uuid.UUID]*Peer
	// left are the peers that said they leave NATS (sayLeaving), and
	// when, until they are heard again; at most maxPeers of them.
	left map[uuid.UUID]time.Time
}

// count adds events (msgs of them, bytes in all) from node, if it is a
// known peer.
func (t *peerTable) count(node uuid.UUID, msgs, bytes int) {
	if msgs == 0 {
		return
	}
	t.mu.Lock()
	if p := t.peers[node]; p != nil {
		p.Msgs += uint64(msgs)
		p.Bytes += uint64(bytes)
	}
	t.mu.Unlock()
}

// missed adds n events of node that never came, if it is a known peer:
// what a peer loses before its first heartbeat is heard counts in
// Stats.MissedIn alone.
func (t *peerTable) missed(node uuid.UUID, n uint64) {
	t.mu.Lock()
	if p := t.peers[node]; p != nil {
		p.Missed += n
	}
	t.mu.Unlock()
}

// beat publishes a heartbeat at once and then every Heartbeat, until
// Close.
func (l *Link) beat() {
	defer l.wg.Done()
	host, _ := os.Hostname()
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	for {
		m := nats.NewMsg(hbSubject(l.cfg.Prefix, l.cfg.Cluster))
		m.Header.Set(headerNode, l.cfg.Node.String())
		m.Header.Set(headerHost, host)
		m.Header.Set(headerPID, strconv.Itoa(os.Getpid()))
		m.Header.Set(headerVersion, l.cfg.Version)
		if l.cfg.Channels != nil {
			m.Data = []byte(strings.Join(l.cfg.Channels(), ","))
		}
		if l.nc.IsConnected() {
			l.nc.PublishMsg(m) // a heartbeat is never buffered: the next one says the same
		}
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
	}
}

// sayLeaving publishes, when connected, a last heartbeat that says this
// server leaves NATS (headerBye): its link closes with none on the same
// subjects to take over, as when the server shuts down or a reload turns
// NATS off. The peers forget it at once rather than after PeerTimeout,
// and know that it left rather than lost NATS (Left).
func (l *Link) sayLeaving() {
	if !l.nc.IsConnected() {
		return
	}
	m := nats.NewMsg(hbSubject(l.cfg.Prefix, l.cfg.Cluster))
	m.Header.Set(headerNode, l.cfg.Node.String())
	m.Header.Set(headerBye, "1")
	l.nc.PublishMsg(m)
}

// heard records a heartbeat.
func (l *Link) heard(m *nats.Msg) {
	node, err := uuid.Parse(m.Header.Get(headerNode))
	if err != nil || node == l.cfg.Node {
		return
	}
	now := time.Now()
	if m.Header.Get(headerBye) != "" {
		l.peers.leaves(node, now, l.log)
		return
	}
	pid, _ := strconv.Atoi(m.Header.Get(headerPID))
	var chans []string
	if len(m.Data) > 0 {
		chans = strings.Split(string(m.Data), ",")
	}
	t := &l.peers
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.left, node)
	p := t.peers[node]
	if p == nil {
		if len(t.peers) >= maxPeers {
			return
		}
		p = &Peer{Node: node, FirstSeen: now}
		t.peers[node] = p
		l.log.Info("a peer joined over NATS", "peer", node, "host", m.Header.Get(headerHost))
	}
	p.Host, p.PID, p.Version, p.Channels, p.LastSeen = m.Header.Get(headerHost), pid, m.Header.Get(headerVersion), chans, now
}

// leaves forgets node, which said at now that it leaves NATS.
func (t *peerTable) leaves(node uuid.UUID, now time.Time, log *slog.Logger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[node]; p != nil {
		delete(t.peers, node)
		log.Info("a peer left NATS", "peer", node, "host", p.Host)
	}
	if t.left == nil {
		t.left = make(map[uuid.UUID]time.Time)
	}
	if len(t.left) >= maxPeers {
		var oldest uuid.UUID
		for n, at := range t.left {
			if oldest == uuid.Nil || at.Before(t.left[oldest]) {
				oldest = n
			}
		}
		delete(t.left, oldest)
	}
	t.left[node] = now
}

// Left reports whether the server node said it leaves NATS (it shut down,
// or a reload turned its NATS link off or moved it to other subjects), and
// has not been heard over NATS since. A peer that goes silent without
// saying so has lost NATS: it keeps its events for NATS until it is back.
func (l *Link) Left(node uuid.UUID) bool {
	t := &l.peers
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.left[node]
	return ok
}

// Peers returns the servers heard from within PeerTimeout, sorted by
// host name, then node id; it forgets the others.
func (l *Link) Peers() []Peer {
	t := &l.peers
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Peer
	for node, p := range t.peers {
		if time.Since(p.LastSeen) > l.cfg.PeerTimeout {
			delete(t.peers, node)
			continue
		}
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Node.String(), b.Node.String())
	})
	return out
}
