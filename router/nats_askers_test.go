package router

import (
	"testing"

	"github.com/google/uuid"
)

// TestAskerTable checks the asker table against a model: the latest
// maxAskers ids are found with their node, evicted ones are not, an id
// put again takes its new node, across several wraps of the ring.
func TestAskerTable(t *testing.T) {
	var tab askerTable
	if _, ok := tab.get(uuid.New()); ok {
		t.Fatal("an empty table found an id")
	}
	nodes := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	var order []uuid.UUID // the ids in the order the ring holds them
	model := map[uuid.UUID]uuid.UUID{}
	var gone []uuid.UUID // ids evicted
	for i := range 3*maxAskers + 100 {
		id := uuid.New()
		if i%7 == 0 {
			id = uuid.Nil // a message may name the nil id: it is an id like any other
		}
		node := nodes[i%len(nodes)]
		if _, ok := model[id]; !ok {
			if len(order) == maxAskers {
				delete(model, order[0])
				gone = append(gone, order[0])
				order = order[1:]
			}
			order = append(order, id)
		}
		model[id] = node
		tab.put(id, node)
		if i%1000 != 0 && i < 3*maxAskers {
			continue
		}
		for _, id := range order {
			if got, ok := tab.get(id); !ok || got != model[id] {
				t.Fatalf("after %d puts: id %v: got %v, %v; want %v", i+1, id, got, ok, model[id])
			}
		}
	}
	if _, ok := tab.get(uuid.New()); ok {
		t.Error("an id never put was found")
	}
	for _, id := range gone {
		if _, ok := model[id]; ok {
			continue // put again since
		}
		if node, ok := tab.get(id); ok {
			t.Fatalf("evicted id %v still found, node %v", id, node)
		}
	}
}

// BenchmarkAskerTable measures a put on a full table, as each event
// from NATS makes one.
func BenchmarkAskerTable(b *testing.B) {
	var tab askerTable
	ids := make([]uuid.UUID, 4*maxAskers)
	for i := range ids {
		ids[i] = uuid.New()
	}
	node := uuid.New()
	b.ResetTimer()
	for i := range b.N {
		tab.put(ids[i%len(ids)], node)
	}
}
