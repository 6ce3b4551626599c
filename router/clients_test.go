package router

import (
	"testing"

	"github.com/google/uuid"
)

// TestClientLog: the last maxHeardClients clients added are found, each
// with the node it was added with last, however many times each was
// added; a client added again stays while others come and go; one not
// heard from for two generations is forgotten.
func TestClientLog(t *testing.T) {
	var log clientLog
	if _, ok := log.get(uuid.New()); ok {
		t.Fatal("an empty log found a client")
	}
	a, b := uuid.New(), uuid.New()
	nodeA, nodeB := uuid.New(), uuid.New()
	// A run of one client's events, then its node changes (it moved to
	// another server).
	for range 3 {
		log.add(a, nodeA)
	}
	log.add(a, nodeB)
	if n, ok := log.get(a); !ok || n != nodeB {
		t.Fatalf("got %v, %v; want the last node, %v", n, ok, nodeB)
	}
	// b keeps being heard from while 3 generations of others pass; a is
	// heard no more.
	var others []uuid.UUID
	for i := range 3 * maxHeardClients {
		id := uuid.New()
		others = append(others, id)
		log.add(id, nodeA)
		if i%1000 == 0 {
			log.add(b, nodeB)
		}
	}
	if n, ok := log.get(b); !ok || n != nodeB {
		t.Errorf("a client heard from all along is forgotten: %v, %v", n, ok)
	}
	if log.has(a) {
		t.Error("a client not heard from for three generations is remembered")
	}
	for i, id := range others[len(others)-maxHeardClients:] {
		if n, ok := log.get(id); !ok || n != nodeA {
			t.Fatalf("client %d of the last %d: %v, %v", i, maxHeardClients, n, ok)
		}
	}
	if log.has(others[0]) {
		t.Error("the first of the others is still remembered")
	}
}
