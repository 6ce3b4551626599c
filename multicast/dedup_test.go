package multicast

import (
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// TestRecentAgainstModel adds ids, many of them again while remembered
// or after being forgotten, to Recents of several sizes, and checks each
// answer against a model that numbers the ids taken as new: an id among
// the last n taken is remembered, one taken more than 2n ago (or never)
// is not, and in between either answer is right, which the model then
// follows. Tiny sizes and a small pool of ids make the probe sequences
// collide and wrap.
func TestRecentAgainstModel(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 16, 100} {
		r := NewRecent(n)
		taken := map[uuid.UUID]int{} // the id's number among the ids taken as new
		k := 0                       // ids taken as new
		// state says what the model allows for id: remembered for
		// sure (must), or possibly (may).
		state := func(id uuid.UUID) (must, may bool) {
			at, ok := taken[id]
			if !ok {
				return false, false
			}
			return k-at < n, k-at < 2*n
		}
		pool := make([]uuid.UUID, 3*n+2)
		for i := range pool {
			pool[i] = uuid.New()
		}
		pool[0] = uuid.Nil // remembered like any other id
		rng := rand.New(rand.NewPCG(1, uint64(n)))
		for step := range 20000 {
			id := pool[rng.IntN(len(pool))]
			must, may := state(id)
			if rng.IntN(4) == 0 {
				if got := r.Has(id); (must && !got) || (!may && got) {
					t.Fatalf("n %d step %d: Has = %v, want remembered %v, may be %v", n, step, got, must, may)
				}
				continue
			}
			got := r.Add(id)
			if (must && got) || (!may && !got) {
				t.Fatalf("n %d step %d: Add = %v, want remembered %v, may be %v", n, step, got, must, may)
			}
			if got {
				k++
				taken[id] = k
			}
			if l := r.len(); l > 2*n || l < min(k, n) {
				t.Fatalf("n %d step %d: remembers %d ids, want %d to %d", n, step, l, min(k, n), 2*n)
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
