package channel_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// holdingChannel is a channel with cfg (Name "A" and a Node set) whose
// Handler forwards every event, but holds the first event of a client
// named "dropped" until letGo: the events behind it wait unread in that
// client's socket. letGo runs at cleanup too, before the channel closes,
// which waits for the Handler.
type holdingChannel struct {
	ch      *channel.Channel
	node    uuid.UUID
	holding atomic.Bool
	letGo   func()
}

func newHoldingChannel(t *testing.T, cfg channel.Config) *holdingChannel {
	t.Helper()
	h := &holdingChannel{node: uuid.New()}
	release := make(chan struct{})
	h.letGo = sync.OnceFunc(func() { close(release) })
	cfg.Name, cfg.Node = "A", h.node
	cfg.Handler = func(from *channel.Conn, ev *channel.Event) {
		if from.Info().Name == "dropped" && h.holding.CompareAndSwap(false, true) {
			<-release
		}
		h.ch.SendEvent(ev, from)
	}
	h.ch = listen(t, cfg)
	t.Cleanup(h.letGo)
	return h
}

// awaitHold waits until the Handler holds the dropped client's first
// event.
func (h *holdingChannel) awaitHold(t *testing.T) {
	t.Helper()
	routertest.WaitFor(t, "the Handler to hold the first event", h.holding.Load)
}

// floodUntilDropped has a client of its own emit 1 KiB events "f" until
// the channel has dropped a client as a slow consumer, at maxpending or
// for stalltimeout.
func (h *holdingChannel) floodUntilDropped(t *testing.T) {
	t.Helper()
	flood := dial(t, h.ch, "flood")
	data := make([]byte, 1024)
	deadline := time.Now().Add(30 * time.Second)
	for st := h.ch.Stats(); st.StallTimeouts+st.SlowConsumers == 0; st = h.ch.Stats() {
		if time.Now().After(deadline) {
			t.Fatal("the client was never dropped as a slow consumer")
		}
		for range 16 {
			if err := flood.Emit("f", data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkAll waits, 10 s at most, until r has heard n events, and checks
// that they are 0 to n-1 in order.
func (r *ints) checkAll(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.count() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	got := r.values()
	if len(got) != n {
		t.Errorf("the receiver got %d of the %d events", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Errorf("event %d is number %d: lost, or out of order", i, v)
			return
		}
	}
}

// dialDropped connects the Go client to drop, with opts: with a queue of
// one, it stops taking the flood ("f") at its first event until
// openGate is called (at cleanup too). It emits the first event, and
// waits until the Handler holds it.
func (h *holdingChannel) dialDropped(t *testing.T, opts ...bus.Option) (x *bus.Client, openGate func()) {
	t.Helper()
	x = dialWith(t, h.ch, "dropped", append([]bus.Option{bus.QueueLen(1)}, opts...)...)
	gate := make(chan struct{})
	openGate = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate)
	if _, err := x.On("f", func(bus.Message) { <-gate }); err != nil {
		t.Fatal(err)
	}
	if err := x.Emit("first", nil); err != nil {
		t.Fatal(err)
	}
	h.awaitHold(t)
	return x, openGate
}
