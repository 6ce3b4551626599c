package multicast

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// Recent remembers the last message ids it was shown, at least a fixed
// number n of them and at most 2n, to drop messages that arrive twice.
// It is safe for concurrent use.
//
// A server asks it once per event from the network, so it is built for
// that: two generations of at most n ids, each the ids in the order they
// came and an open-addressing index of them (linear probing, at most
// half full), allocated once. New ids go into the current generation;
// when it is full, the older one is emptied at once and takes the new
// ids. So a new id costs a probe of each index and two stores, and
// forgetting costs one clear per n ids. A Go map cost three lookups per
// event and missed the cache on each; one ring that forgot exactly the
// oldest id cost three probes and a removal per event.
type Recent struct {
	mu   sync.Mutex
	gens [2]recentGen
	cur  int // the generation that takes new ids
	mask uint64
	// k0, k1 key the hash, so that ids made to collide elsewhere do not
	// collide here.
	k0, k1 uint64
}

// recentGen is a generation of ids: ids in the order they came, and
// slots indexing them, each the low 32 bits of an id's hash above its
// place in ids plus one; 0 marks a free slot.
type recentGen struct {
	ids   []uuid.UUID
	slots []uint64
}

// NewRecent returns a Recent that remembers at least n ids.
func NewRecent(n int) *Recent {
	n = max(1, n)
	size := 1 << bits.Len(uint(2*n-1)) // a power of two, at least 2n
	r := &Recent{mask: uint64(size - 1), k0: rand.Uint64(), k1: rand.Uint64()}
	for i := range r.gens {
		r.gens[i] = recentGen{ids: make([]uuid.UUID, 0, n), slots: make([]uint64, size)}
	}
	return r
}

// hash mixes id with the Recent's keys (a multiply-fold, as wyhash does).
func (r *Recent) hash(id *uuid.UUID) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(id[:8])^r.k0, binary.LittleEndian.Uint64(id[8:])^r.k1)
	return hi ^ lo
}

// find returns the slot of g that holds id, or the free slot where the
// probe for it ended, and whether id was found.
func (g *recentGen) find(id *uuid.UUID, h, mask uint64) (uint64, bool) {
	tag := h << 32
	for i := h & mask; ; i = (i + 1) & mask {
		s := g.slots[i]
		if s == 0 {
			return i, false
		}
		if s&^0xffffffff == tag && g.ids[uint32(s)-1] == *id {
			return i, true
		}
	}
}

// Has reports whether id is among the remembered ids.
func (r *Recent) Has(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hash(&id)
	_, old := r.gens[0].find(&id, h, r.mask)
	_, cur := r.gens[1].find(&id, h, r.mask)
	return old || cur
}

// Add remembers id. It reports whether id is new: false when it was
// remembered already.
func (r *Recent) Add(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hash(&id)
	if _, ok := r.gens[r.cur^1].find(&id, h, r.mask); ok {
		return false
	}
	g := &r.gens[r.cur]
	i, ok := g.find(&id, h, r.mask)
	if ok {
		return false
	}
	if len(g.ids) == cap(g.ids) {
		// Full: the older generation is forgotten, and takes the new
		// ids from now on.
		r.cur ^= 1
		g = &r.gens[r.cur]
		clear(g.slots)
		g.ids = g.ids[:0]
		i, _ = g.find(&id, h, r.mask)
	}
	g.ids = append(g.ids, id)
	g.slots[i] = h<<32 | uint64(len(g.ids))
	return true
}

// len is how many ids are remembered.
func (r *Recent) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.gens[0].ids) + len(r.gens[1].ids)
}
