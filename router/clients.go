package router

import (
	"sync"

	"github.com/google/uuid"
)

// clientLog remembers the clients lately heard from, by client id, each
// with a node: the clients that sent events from other servers over
// NATS, with their server (where a reply to one of them must go), the
// local clients that sent events to NATS (may a reply from NATS address
// one of them?), and the clients heard from over the multicast group.
// A reply is addressed to a client (its To is the asking client's id),
// so the log is by client and not by event: it holds as long as the
// asker keeps being heard from, or fewer than maxHeardClients others are,
// however many events pass meanwhile.
//
// It is written once per event, so a run of events of one client costs
// a comparison: the client last added is noted apart. The log has two
// generations of at most maxHeardClients clients: entries go into the newer
// one, and when it is full the older one is emptied and becomes the
// newer, so nothing is removed one by one. It is safe for concurrent
// use.
type clientLog struct {
	mu   sync.Mutex
	gens [2]map[uuid.UUID]uuid.UUID
	cur  int
	// last and lastNode are the client and node last added, which are
	// in gens[cur] (a rotation happens only for a client new to it);
	// lastSet is false until one is.
	last, lastNode uuid.UUID
	lastSet        bool
}

// maxHeardClients is how many clients a generation of a clientLog holds: a
// clientLog remembers at least the last maxHeardClients clients heard from.
const maxHeardClients = 65536

// add notes that client was heard from, with node.
func (l *clientLog) add(client, node uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastSet && client == l.last && node == l.lastNode {
		return
	}
	g := l.gens[l.cur]
	if g == nil {
		l.gens[0], l.gens[1] = make(map[uuid.UUID]uuid.UUID), make(map[uuid.UUID]uuid.UUID)
		g = l.gens[l.cur]
	}
	if n, ok := g[client]; !ok || n != node {
		if !ok && len(g) >= maxHeardClients {
			l.cur ^= 1
			g = l.gens[l.cur]
			clear(g)
		}
		g[client] = node
	}
	l.last, l.lastNode, l.lastSet = client, node, true
}

// get returns the node client was last heard from with, if it is
// remembered.
func (l *clientLog) get(client uuid.UUID) (uuid.UUID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.gens[l.cur][client]; ok {
		return n, true
	}
	n, ok := l.gens[l.cur^1][client]
	return n, ok
}

// has reports whether client is remembered.
func (l *clientLog) has(client uuid.UUID) bool {
	_, ok := l.get(client)
	return ok
}
