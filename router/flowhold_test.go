package router_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/router/routertest"
)

// pastHigh reports whether the client id of channel name on ts has more
// queued than its high-water mark, half of maxpending. A push that
// leaves it there marks the event, and whatever sent it, a local
// publisher or a link, holds back after it until the queue drains under
// the low mark (channel/flow.go): while the client takes nothing, the
// hold cannot end but by a bound or a drop, and once it ends the
// channel counts it in its stalls.
func pastHigh(ts *routertest.Server, name string, id uuid.UUID) bool {
	clients, _ := ts.Clients(name)
	for _, c := range clients {
		if c.ID == id {
			return c.Pending > ts.Config().MaxPending/2
		}
	}
	return false
}

// waitPastHigh waits, while the listener of the client id is stopped at
// a closed gate, until its queue on ts is past its high-water mark, so
// that what feeds it is held however fast the listener would read, or
// until gone reports that the client was dropped: the caller opens the
// gate either way, and its checks say what went wrong. It looks every
// millisecond, as the network link holds back for a client for 100 ms
// at most before it fills its queue to maxpending.
func waitPastHigh(t *testing.T, ts *routertest.Server, name string, id uuid.UUID, gone func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !pastHigh(ts, name, id) && !gone() {
		if time.Now().After(deadline) {
			t.Fatalf("the client of %s never passed its high-water mark while it took nothing", name)
		}
		time.Sleep(time.Millisecond)
	}
}
