package multicast

import (
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// TestRecentAgainstModel adds ids, many of them again while remembered
// or after being forgotten, to Recents of several sizes, and checks each
// answer against a plain ring and map: Add and Has say what the model
// says, and the index holds exactly the ring's ids. Tiny sizes and a
// small pool of ids make the probe sequences collide and wrap, so that
// removal shifts slots back across the end of the index.
func TestRecentAgainstModel(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 16, 100} {
		r := NewRecent(n)
		var ring []uuid.UUID
		set := map[uuid.UUID]bool{}
		pool := make([]uuid.UUID, 3*n+2)
		for i := range pool {
			pool[i] = uuid.New()
		}
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		for step := range 20000 {
			id := pool[rng.IntN(len(pool))]
			if rng.IntN(4) == 0 {
				if got, want := r.Has(id), set[id]; got != want {
					t.Fatalf("n %d step %d: Has = %v, want %v", n, step, got, want)
				}
				continue
			}
			want := !set[id]
			if want {
				if len(ring) == n {
					delete(set, ring[0])
					ring = ring[1:]
				}
				ring = append(ring, id)
				set[id] = true
			}
			if got := r.Add(id); got != want {
				t.Fatalf("n %d step %d: Add = %v, want %v", n, step, got, want)
			}
			if got := r.len(); got != len(ring) {
				t.Fatalf("n %d step %d: the index holds %d ids, want %d", n, step, got, len(ring))
			}
		}
		for _, id := range pool {
			if got, want := r.Has(id), set[id]; got != want {
				t.Fatalf("n %d at the end: Has(%v) = %v, want %v", n, id, got, want)
			}
		}
	}
}

// BenchmarkRecentAdd adds fresh ids to a full Recent of the size a
// server keeps for events from the network, as each such event does.
func BenchmarkRecentAdd(b *testing.B) {
	r := NewRecent(4096)
	ids := make([]uuid.UUID, 1<<16)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for _, id := range ids[:4096] {
		r.Add(id)
	}
	b.ResetTimer()
	for i := range b.N {
		r.Add(ids[i&(len(ids)-1)])
	}
}
