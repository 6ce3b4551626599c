package natslink

import (
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

// heard records a heartbeat.
func (l *Link) heard(m *nats.Msg) {
	node, err := uuid.Parse(m.Header.Get(headerNode))
	if err != nil || node == l.cfg.Node {
		return
	}
	now := time.Now()
	pid, _ := strconv.Atoi(m.Header.Get(headerPID))
	var chans []string
	if len(m.Data) > 0 {
		chans = strings.Split(string(m.Data), ",")
	}
	t := &l.peers
	t.mu.Lock()
	defer t.mu.Unlock()
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
