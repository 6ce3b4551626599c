package multicast

import "github.com/google/uuid"

// recentIDs remembers the last ids it was shown, up to a fixed number,
// to drop messages that arrive twice. It is not safe for concurrent use.
type recentIDs struct {
	ring []uuid.UUID
	next int
	set  map[uuid.UUID]struct{}
}

func newRecentIDs(n int) *recentIDs {
	return &recentIDs{ring: make([]uuid.UUID, 0, n), set: make(map[uuid.UUID]struct{}, n)}
}

// has reports whether id is among the remembered ids.
func (r *recentIDs) has(id uuid.UUID) bool {
	_, ok := r.set[id]
	return ok
}

// add remembers id, forgetting the oldest id when full.
func (r *recentIDs) add(id uuid.UUID) {
	if r.has(id) {
		return
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[id] = struct{}{}
}
