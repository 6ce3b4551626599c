package multicast

import (
	"math/rand/v2"
	"testing"
	"time"

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

// TestRecentWindow: with a window, every id is remembered for at least
// the window, the generations growing to the rate of new ids and no
// further than needed; a burst past the bound is remembered for the
// bound's ids, and what it forgets early is counted; without the window
// again, the generations shrink back.
func TestRecentWindow(t *testing.T) {
	const least, most, window = 4, 256, 100 * time.Millisecond
	var clock time.Duration
	r := NewRecent(least)
	r.now = func() time.Duration { return clock }
	r.SetWindow(window, most)
	var ids []uuid.UUID
	var at []time.Duration
	add := func() {
		id := uuid.New()
		if !r.Add(id) {
			t.Fatalf("a new id at %v was taken as remembered", clock)
		}
		ids, at = append(ids, id), append(at, clock)
	}
	// checkWindow checks that every id of the last window is remembered
	// and Add drops it, and that ids older than two windows are not.
	checkWindow := func(phase string) {
		t.Helper()
		for i := len(ids) - 1; i >= 0; i-- {
			age := clock - at[i]
			if age > 2*window+window/2 {
				if r.Has(ids[i]) && age > 4*window {
					t.Fatalf("%s: id %d of age %v is still remembered", phase, i, age)
				}
				continue
			}
			if age <= window && (!r.Has(ids[i]) || r.Add(ids[i])) {
				t.Fatalf("%s: id %d of age %v (window %v) is forgotten", phase, i, age, window)
			}
		}
	}
	// A steady 20 ids a window: the generations grow to hold about a
	// window's ids, far from the bound, and nothing is cut.
	for step := range 2000 {
		add()
		clock += window / 20
		if step%97 == 0 {
			checkWindow("steady")
		}
	}
	if c := max(cap(r.gens[0].ids), cap(r.gens[1].ids)); c < 20 || c > 64 {
		t.Errorf("steady: generations of %d ids for 20 ids a window; want 20 to 64", c)
	}
	if r.Cut() != 0 {
		t.Errorf("steady: %d ids cut, want 0", r.Cut())
	}
	// A burst: 2000 ids at once. The generations stop at the bound: the
	// last most ids are remembered, and the early forgetting is counted.
	ids, at = ids[:0], at[:0]
	for range 2000 {
		add()
	}
	if c := max(cap(r.gens[0].ids), cap(r.gens[1].ids)); c != most {
		t.Errorf("burst: generations of %d ids, want the bound, %d", c, most)
	}
	for i, id := range ids[len(ids)-most:] {
		if !r.Has(id) {
			t.Fatalf("burst: id %d of the last %d is forgotten", i, most)
		}
	}
	if r.Cut() == 0 || r.Cut() > uint64(len(ids)) {
		t.Errorf("burst: %d ids counted as cut, want 1 to %d", r.Cut(), len(ids))
	}
	// No window: the generations go back to about n ids.
	r.SetWindow(0, 0)
	for range 4 * most {
		add()
		clock += window / 20
	}
	if c := max(cap(r.gens[0].ids), cap(r.gens[1].ids)); c > 2*least {
		t.Errorf("no window: generations of %d ids, want at most %d", c, 2*least)
	}
	if l := r.len(); l < least || l > 2*least {
		t.Errorf("no window: %d ids remembered, want %d to %d", l, least, 2*least)
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

// BenchmarkRecentAddWindow adds fresh ids to a Recent with a window that
// its rate fills at the bound a server with both links uses: generations
// of 524,288 ids, where each probe misses the cache.
func BenchmarkRecentAddWindow(b *testing.B) {
	r := NewRecent(4096)
	r.SetWindow(time.Hour, 1<<19)
	ids := make([]uuid.UUID, 1<<21)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for _, id := range ids[:1<<20] {
		r.Add(id)
	}
	b.ResetTimer()
	for i := range b.N {
		r.Add(ids[(i+1<<20)&(len(ids)-1)])
	}
}
