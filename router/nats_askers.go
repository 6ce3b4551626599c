package router

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// askerTable maps the ids of the latest events from NATS to their
// origin node: where the reply to one of them must go. It is written
// once per event from NATS, so it is an index with open addressing over
// a ring, as multicast.Recent is, rather than a Go map, whose delete and
// insert per event cost more. It is safe for concurrent use.
type askerTable struct {
	mu   sync.Mutex
	ring []asker // the latest entries, in the order they came
	next int     // where the next entry goes once the ring is full
	// slots index the ring: the low bits of an id's hash and its place
	// in ring plus one; 0 marks a free slot. There are twice as many
	// slots as entries, so that probes stay short.
	slots  []askerSlot
	mask   uint64
	k0, k1 uint64 // key the hash, so that ids cannot be made to collide
}

type asker struct{ id, node uuid.UUID }

type askerSlot struct {
	hash uint32
	at   int32
}

// maxAskers is how many events from NATS can be answered across
// servers at once.
const maxAskers = 16384

func (t *askerTable) hash(id *uuid.UUID) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(id[:8])^t.k0, binary.LittleEndian.Uint64(id[8:])^t.k1)
	return hi ^ lo
}

// find returns the slot of id, or the free slot where its probe ended,
// and whether id is there.
func (t *askerTable) find(id *uuid.UUID, h uint64) (uint64, bool) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s.at == 0 {
			return i, false
		}
		if s.hash == uint32(h) && t.ring[s.at-1].id == *id {
			return i, true
		}
	}
}

// put remembers that event id came from node, forgetting the oldest
// entry when full. An id put again keeps its place and takes the new
// node.
func (t *askerTable) put(id, node uuid.UUID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots == nil {
		t.ring = make([]asker, 0, maxAskers)
		t.slots = make([]askerSlot, 2*maxAskers)
		t.mask = uint64(2*maxAskers - 1)
		t.k0, t.k1 = rand.Uint64(), rand.Uint64()
	}
	h := t.hash(&id)
	i, ok := t.find(&id, h)
	if ok {
		t.ring[t.slots[i].at-1].node = node
		return
	}
	at := len(t.ring)
	if at < cap(t.ring) {
		t.ring = append(t.ring, asker{id, node})
	} else {
		at = t.next
		t.remove(&t.ring[at].id)
		t.ring[at] = asker{id, node}
		t.next = (t.next + 1) % len(t.ring)
		i, _ = t.find(&id, h) // the removal may have moved the free slot
	}
	t.slots[i] = askerSlot{hash: uint32(h), at: int32(at + 1)}
}

// remove takes id out of the index, shifting back the slots after it
// that its probe sequence passed over.
func (t *askerTable) remove(id *uuid.UUID) {
	i, ok := t.find(id, t.hash(id))
	if !ok {
		return
	}
	for j := i; ; {
		t.slots[i] = askerSlot{}
		for {
			j = (j + 1) & t.mask
			if t.slots[j].at == 0 {
				return
			}
			// The entry at j moves to i unless its home slot lies
			// cyclically in (i, j].
			home := uint64(t.slots[j].hash) & t.mask
			if (j-home)&t.mask >= (j-i)&t.mask {
				break
			}
		}
		t.slots[i] = t.slots[j]
		i = j
	}
}

// get returns the origin node of event id, if it is among the latest.
func (t *askerTable) get(id uuid.UUID) (uuid.UUID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.slots == nil {
		return uuid.Nil, false
	}
	i, ok := t.find(&id, t.hash(&id))
	if !ok {
		return uuid.Nil, false
	}
	return t.ring[t.slots[i].at-1].node, true
}
