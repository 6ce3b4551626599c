package multicast

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// Recent remembers the last message ids it was shown, up to a fixed
// number, to drop messages that arrive twice. It is safe for concurrent
// use.
//
// A server asks it once per event from the network, so it is built for
// that: the ids in a ring, oldest first out, and an open-addressing
// index of them (linear probing, at most half full, removal by shifting
// back), both allocated once. A Go map cost three lookups per event and
// missed the cache on each.
type Recent struct {
	mu   sync.Mutex
	ring []uuid.UUID // the ids remembered, in the order they came
	next int         // where the next id goes once the ring is full
	// slots index the ring: a slot holds the low bits of an id's hash
	// and its place in ring plus one; 0 marks a free slot.
	slots []recentSlot
	mask  uint64
	// k0, k1 key the hash, so that ids made to collide elsewhere do not
	// collide here.
	k0, k1 uint64
}

type recentSlot struct {
	hash uint32
	at   int32 // index in ring, plus one; 0: free
}

// NewRecent returns a Recent that remembers n ids.
func NewRecent(n int) *Recent {
	n = max(1, n)
	size := 1 << bits.Len(uint(2*n-1)) // a power of two, at least 2n
	return &Recent{
		ring:  make([]uuid.UUID, 0, n),
		slots: make([]recentSlot, size),
		mask:  uint64(size - 1),
		k0:    rand.Uint64(),
		k1:    rand.Uint64(),
	}
}

// hash mixes id with the Recent's keys (a multiply-fold, as wyhash does).
func (r *Recent) hash(id *uuid.UUID) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(id[:8])^r.k0, binary.LittleEndian.Uint64(id[8:])^r.k1)
	return hi ^ lo
}

// find returns the slot that holds id, or the free slot where the probe
// for it ended, and whether id was found.
func (r *Recent) find(id *uuid.UUID, h uint64) (uint64, bool) {
	for i := h & r.mask; ; i = (i + 1) & r.mask {
		s := r.slots[i]
		if s.at == 0 {
			return i, false
		}
		if s.hash == uint32(h) && r.ring[s.at-1] == *id {
			return i, true
		}
	}
}

// Has reports whether id is among the remembered ids.
func (r *Recent) Has(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.find(&id, r.hash(&id))
	return ok
}

// Add remembers id, forgetting the oldest id when full. It reports
// whether id is new: false when it was remembered already.
func (r *Recent) Add(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hash(&id)
	i, ok := r.find(&id, h)
	if ok {
		return false
	}
	at := len(r.ring)
	if at < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		at = r.next
		r.remove(&r.ring[at])
		r.ring[at] = id
		r.next = (r.next + 1) % len(r.ring)
		i, _ = r.find(&id, h) // the removal may have moved the free slot
	}
	r.slots[i] = recentSlot{hash: uint32(h), at: int32(at + 1)}
	return true
}

// remove takes the remembered id out of the index, shifting back the
// slots after it that its own probe sequence passed over.
func (r *Recent) remove(id *uuid.UUID) {
	i, ok := r.find(id, r.hash(id))
	if !ok {
		return
	}
	for j := i; ; {
		r.slots[i] = recentSlot{}
		for {
			j = (j + 1) & r.mask
			if r.slots[j].at == 0 {
				return
			}
			// The entry at j moves to i unless its home slot lies
			// cyclically in (i, j].
			home := uint64(r.slots[j].hash) & r.mask // the index has far fewer than 2^32 slots
			if (j-home)&r.mask >= (j-i)&r.mask {
				break
			}
		}
		r.slots[i] = r.slots[j]
		i = j
	}
}

// len is how many ids are remembered.
func (r *Recent) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.slots {
		if s.at != 0 {
			n++
		}
	}
	return n
}
