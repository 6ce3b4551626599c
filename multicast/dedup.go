package multicast

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Recent remembers the last message ids it was shown, at least a fixed
// number n of them and at most 2n, to drop messages that arrive twice;
// with a window (SetWindow), each id for at least that long too, up to
// a bound. It is safe for concurrent use.
//
// A server asks it once per event from the network, so it is built for
// that: two generations of ids, each the ids in the order they came and
// an open-addressing index of them (linear probing, at most half full).
// New ids go into the current generation; when it is full, the older
// one is emptied at once and takes the new ids. So a new id costs a
// probe of each index and two stores, and forgetting costs one clear per
// generation. A Go map cost three lookups per event and missed the cache
// on each; one ring that forgot exactly the oldest id cost three probes
// and a removal per event.
//
// With a window, a generation that fills before the window has passed
// since its first id grows (doubling, up to the bound) instead of
// making the older one forget: so the generations are as large as the
// rate of new ids needs, and no larger than n where it is low. One that
// is full at the bound forgets early, and counts what it forgot (Cut).
type Recent struct {
	mu   sync.Mutex
	gens [2]recentGen
	cur  int // the generation that takes new ids
	// k0, k1 key the hash, so that ids made to collide elsewhere do not
	// collide here.
	k0, k1 uint64
	least  int // NewRecent's n: the ids a generation holds at least
	window time.Duration
	most   int                  // the ids a generation may grow to, with a window
	now    func() time.Duration // a monotonic clock
	cut    uint64               // ids forgotten before the window had passed
}

// recentGen is a generation of ids: ids in the order they came, and
// slots indexing them, each the low 32 bits of an id's hash above its
// place in ids plus one; 0 marks a free slot. began is when it took its
// first id.
type recentGen struct {
	ids   []uuid.UUID
	slots []uint64
	mask  uint64
	began time.Duration
}

// NewRecent returns a Recent that remembers at least n ids.
func NewRecent(n int) *Recent {
	n = max(1, n)
	r := &Recent{k0: rand.Uint64(), k1: rand.Uint64(), least: n, most: n, now: sinceStart}
	for i := range r.gens {
		r.gens[i].alloc(n)
	}
	return r
}

// sinceStart is a monotonic clock: the time since the process started.
func sinceStart() time.Duration { return time.Since(processStart) }

var processStart = time.Now()

// alloc empties g and makes it hold n ids.
func (g *recentGen) alloc(n int) {
	size := 1 << bits.Len(uint(2*n-1)) // a power of two, at least 2n
	g.ids, g.slots, g.mask = make([]uuid.UUID, 0, n), make([]uint64, size), uint64(size-1)
}

// SetWindow makes r remember each id for at least window, growing each
// generation up to most ids for that (at least NewRecent's n); window 0
// goes back to remembering at least n ids, and the generations shrink
// back as they are emptied.
func (r *Recent) SetWindow(window time.Duration, most int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.window, r.most = window, max(r.least, most)
	if window <= 0 {
		r.window, r.most = 0, r.least
	}
}

// Cut is how many ids were forgotten before the window had passed since
// they came, because a generation was full at its bound: an id that
// comes again after that is taken as new.
func (r *Recent) Cut() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cut
}

// hash mixes id with the Recent's keys (a multiply-fold, as wyhash does).
func (r *Recent) hash(id *uuid.UUID) uint64 {
	hi, lo := bits.Mul64(binary.LittleEndian.Uint64(id[:8])^r.k0, binary.LittleEndian.Uint64(id[8:])^r.k1)
	return hi ^ lo
}

// find returns the slot of g that holds id, or the free slot where the
// probe for it ended, and whether id was found.
func (g *recentGen) find(id *uuid.UUID, h uint64) (uint64, bool) {
	tag := h << 32
	for i := h & g.mask; ; i = (i + 1) & g.mask {
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
	_, old := r.gens[0].find(&id, h)
	_, cur := r.gens[1].find(&id, h)
	return old || cur
}

// Add remembers id. It reports whether id is new: false when it was
// remembered already.
func (r *Recent) Add(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hash(&id)
	if _, ok := r.gens[r.cur^1].find(&id, h); ok {
		return false
	}
	g := &r.gens[r.cur]
	i, ok := g.find(&id, h)
	if ok {
		return false
	}
	if len(g.ids) == cap(g.ids) {
		g = r.full()
		i, _ = g.find(&id, h)
	}
	if len(g.ids) == 0 && r.window > 0 {
		g.began = r.now()
	}
	g.ids = append(g.ids, id)
	g.slots[i] = h<<32 | uint64(len(g.ids))
	return true
}

// full makes room for a new id when the current generation is full, and
// returns the generation that takes it: the current one grown, when the
// window has not passed since its first id and it may grow; else the
// older one, emptied, and sized for the ids it should take, as many as
// came in a window at the rate the full one filled (at least n, at most
// the bound).
func (r *Recent) full() *recentGen {
	g := &r.gens[r.cur]
	var age time.Duration
	if r.window > 0 {
		age = r.now() - g.began
	}
	if age < r.window && cap(g.ids) < r.most {
		g.grow(min(2*cap(g.ids), r.most))
		return g
	}
	old := &r.gens[r.cur^1]
	if age < r.window {
		r.cut += uint64(len(old.ids)) // the newest of them came less than a window ago
	}
	r.cur ^= 1
	want := r.least
	if r.window > 0 && age > 0 {
		want = int(min(int64(r.most), max(int64(r.least), int64(len(g.ids))*int64(r.window)/int64(age))))
	}
	if c := cap(old.ids); c < want || c > 2*want {
		old.alloc(want)
	} else {
		clear(old.slots)
		old.ids = old.ids[:0]
	}
	return old
}

// grow makes g hold n ids, keeping those it holds.
func (g *recentGen) grow(n int) {
	ids, slots := g.ids, g.slots
	g.alloc(n)
	g.ids = append(g.ids, ids...)
	for _, s := range slots {
		if s == 0 {
			continue
		}
		tag := s &^ 0xffffffff
		for i := tag >> 32 & g.mask; ; i = (i + 1) & g.mask {
			if g.slots[i] == 0 {
				g.slots[i] = s
				break
			}
		}
	}
}

// len is how many ids are remembered.
func (r *Recent) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.gens[0].ids) + len(r.gens[1].ids)
}
