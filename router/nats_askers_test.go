package router

import (
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

// TestIDLog checks the log against a model: the latest maxAskers ids
// added are found, each with the node it was added with last, and none
// older, across several wraps of the ring, whether reads come after
// every add, now and then, or after a long silence (when the index has
// most to catch up, or skips what the ring overwrote).
func TestIDLog(t *testing.T) {
	for _, every := range []int{1, 97, 5000, 3 * maxAskers} {
		var log idLog
		if _, ok := log.get(uuid.New()); ok {
			t.Fatal("an empty log found an id")
		}
		nodes := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
		var added []uuid.UUID // every id, in the order added
		latest := map[uuid.UUID]int{}
		var reused []uuid.UUID // ids to add again
		check := func(n int) {
			t.Helper()
			for i := max(0, len(added)-maxAskers); i < len(added); i++ {
				id := added[i]
				want := nodes[latest[id]%len(nodes)]
				if got, ok := log.get(id); !ok || got != want {
					t.Fatalf("every %d, after %d adds: id %d of them: got %v, %v; want %v", every, n, i, got, ok, want)
				}
			}
			for i := max(0, len(added)-maxAskers-200); i < len(added)-maxAskers; i++ {
				if id := added[i]; latest[id] < len(added)-maxAskers {
					if _, ok := log.get(id); ok {
						t.Fatalf("every %d, after %d adds: id %d of them, added %d ago, still found", every, n, i, len(added)-i)
					}
				}
			}
		}
		for i := range 3*maxAskers + 100 {
			id := uuid.New()
			switch {
			case i%7 == 0:
				id = uuid.Nil // a message may name the nil id: it is an id like any other
			case i%11 == 0 && len(reused) > 0:
				id = reused[rand.IntN(len(reused))] // added again: it takes its new place and node
			case i%13 == 0:
				reused = append(reused, id)
			}
			added = append(added, id)
			latest[id] = i
			log.add(id, nodes[i%len(nodes)])
			if i%every == 0 {
				if _, ok := log.get(id); !ok {
					t.Fatalf("every %d: the id just added is not found", every)
				}
			}
			if i%max(4000, every) == 0 {
				check(i + 1)
			}
		}
		check(len(added))
		if _, ok := log.get(uuid.New()); ok {
			t.Error("an id never added was found")
		}
	}
}

// TestIDLogWithoutNodes: a log given no node but uuid.Nil keeps ids
// alone, and finds them.
func TestIDLogWithoutNodes(t *testing.T) {
	var log idLog
	ids := make([]uuid.UUID, 100)
	for i := range ids {
		ids[i] = uuid.New()
		log.add(ids[i], uuid.Nil)
	}
	if log.nodes != nil {
		t.Error("a log of ids alone keeps nodes")
	}
	for _, id := range ids {
		if !log.has(id) {
			t.Fatalf("id %v not found", id)
		}
	}
	if log.has(uuid.New()) {
		t.Error("an id never added was found")
	}
}

// BenchmarkIDLog measures an add, as each event sent to or from NATS
// makes one, alone ("add") and with a read after every 100 ("add+read":
// a reply for one event in a hundred).
func BenchmarkIDLog(b *testing.B) {
	ids := make([]uuid.UUID, 4*maxAskers)
	for i := range ids {
		ids[i] = uuid.New()
	}
	node := uuid.New()
	b.Run("add", func(b *testing.B) {
		var log idLog
		for i := range b.N {
			log.add(ids[i%len(ids)], node)
		}
	})
	b.Run("add+read", func(b *testing.B) {
		var log idLog
		for i := range b.N {
			id := ids[i%len(ids)]
			log.add(id, node)
			if i%100 == 0 {
				log.get(id)
			}
		}
	})
}
