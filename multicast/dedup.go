package multicast

import (
	"sync"

	"github.com/google/uuid"
)

// Recent remembers the last message ids it was shown, up to a fixed
// number, to drop messages that arrive twice. It is safe for concurrent
// use.
type Recent struct {
	mu   sync.Mutex
	ring []uuid.UUID
	next int
	set  map[uuid.UUID]struct{}
}

// NewRecent returns a Recent that remembers n ids.
func NewRecent(n int) *Recent {
	return &Recent{ring: make([]uuid.UUID, 0, n), set: make(map[uuid.UUID]struct{}, n)}
}

// Has reports whether id is among the remembered ids.
func (r *Recent) Has(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[id]
	return ok
}

// Add remembers id, forgetting the oldest id when full. It reports
// whether id is new: false when it was remembered already.
func (r *Recent) Add(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[id]; ok {
		return false
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[id] = struct{}{}
	return true
}
