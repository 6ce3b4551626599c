package router

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// idLog remembers the ids of the latest maxAskers events it was given,
// each with a node when it keeps nodes: the events sent to NATS (is a
// reply from NATS an answer to one of them?), and the events from NATS
// with their origin (where must the reply to one of them go?).
//
// It is written once per event and read once per reply, which is rare
// beside events, so a write only appends to a ring, in order, and the
// index over the ring is brought up to date when a read needs it: an
// event costs one sequential write, not the random probes of a hash
// table, and a run of replies costs what indexing every event would
// have cost. The index has two generations of maxAskers entries each:
// entries go into the newer one, and when it is full, the older one is
// emptied and becomes the newer, so nothing is ever removed one by one.
// A slot names a place in the ring, and counts only while the ring still
// holds the slot's id there: whatever the ring has overwritten is gone.
// It is safe for concurrent use.
type idLog struct {
	mu      sync.Mutex
	ids     []uuid.UUID // the ring; ids[n%maxAskers] is the n-th id written
	nodes   []uuid.UUID // beside ids, once a node is added; nil before
	written uint64      // ids written so far
	indexed uint64      // ids[...] before this one are in the index, or overwritten
	gens    [2]idIndex  // gens[cur] takes new entries
	cur     int
	k0, k1  uint64 // key the hash, so that ids cannot be made to collide
}

// idIndex is one generation of the index: open addressing, twice as
// many slots as entries, so that probes stay short.
type idIndex struct {
	slots []idSlot
	n     int // entries put since it was emptied
}

// idSlot is the low bits of an id's hash and its place in the ring plus
// one; at 0 marks a free slot.
type idSlot struct {
	hash uint32
	at   int32
}

// maxAskers is how many of the latest events an idLog remembers: the
// events from NATS whose requests can be answered across servers, and
// the events sent to NATS whose replies are taken.
const maxAskers = 16384

const idSlots = 2 * maxAskers

// add remembers id, with node: a log that is never given a node but
// uuid.Nil keeps none.
func (l *idLog) add(id, node uuid.UUID) {
	l.mu.Lock()
	if l.ids == nil {
		l.ids = make([]uuid.UUID, maxAskers)
	}
	at := l.written % maxAskers
	l.ids[at] = id
	if l.nodes == nil && node != uuid.Nil {
		l.nodes = make([]uuid.UUID, maxAskers)
	}
	if l.nodes != nil {
		l.nodes[at] = node
	}
	l.written++
	l.mu.Unlock()
}

// get reports whether id is among the latest maxAskers ids added, and
// the node added with it last.
func (l *idLog) get(id uuid.UUID) (uuid.UUID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == 0 {
		return uuid.Nil, false
	}
	l.catchUp()
	h := l.hash(&id)
	for _, g := range [2]int{l.cur, 1 - l.cur} {
		if at, ok := l.find(&l.gens[g], &id, h); ok {
			if l.nodes == nil {
				return uuid.Nil, true
			}
			return l.nodes[at], true
		}
	}
	return uuid.Nil, false
}

// has reports whether id is among the latest maxAskers ids added.
func (l *idLog) has(id uuid.UUID) bool {
	_, ok := l.get(id)
	return ok
}

// catchUp indexes the ids added since the last read that the ring still
// holds.
func (l *idLog) catchUp() {
	if l.gens[0].slots == nil {
		l.gens[0].slots = make([]idSlot, idSlots)
		l.gens[1].slots = make([]idSlot, idSlots)
		l.k0, l.k1 = rand.Uint64(), rand.Uint64()
	}
	if l.written > maxAskers {
		l.indexed = max(l.indexed, l.written-maxAskers)
	}
	for ; l.indexed < l.written; l.indexed++ {
		at := int(l.indexed % maxAskers)
		l.put(&l.ids[at], at)
	}
}

// put indexes the id at place at of the ring, in the newer generation:
// in place of the slot that holds the same id, if any, so that the
// latest place of an id is the one found.
func (l *idLog) put(id *uuid.UUID, at int) {
	g := &l.gens[l.cur]
	if g.n == maxAskers {
		l.cur = 1 - l.cur
		g = &l.gens[l.cur]
		clear(g.slots)
		g.n = 0
	}
	h := l.hash(id)
	for i := h % idSlots; ; i = (i + 1) % idSlots {
		s := &g.slots[i]
		if s.at == 0 || (s.hash == uint32(h) && l.ids[s.at-1] == *id) {
			if s.at == 0 {
				g.n++
			}
			*s = idSlot{hash: uint32(h), at: int32(at + 1)}
			return
		}
	}
}

// find returns the place in the ring of id, if g's slots hold it and
// the ring still does.
func (l *idLog) find(g *idIndex, id *uuid.UUID, h uint64) (int, bool) {
	for i := h % idSlots; ; i = (i + 1) % idSlots {
		s := g.slots[i]
		if s.at == 0 {
			return 0, false
		}
		if s.hash == uint32(h) && l.ids[s.at-1] == *id {
			return int(s.at - 1), true
		}
	}
}

func (l *idLog) hash(id *uuid.UUID) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(id[:8])^l.k0, binary.LittleEndian.Uint64(id[8:])^l.k1)
	return hi ^ lo
}
