package channel_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestDroppedGoClientsLastWriteDelivered: a Go client dropped as a slow
// consumer (here for stalltimeout) while it is in the middle of a write
// lets the write end before it closes, and the server, which reads on,
// delivers every event of it; the rest go on the next connection, in
// order. Before, the client closed at the Error frame, cut the write,
// and the events of it that the server had not read were lost.
func TestDroppedGoClientsLastWriteDelivered(t *testing.T) {
	const events = 5000
	h, recv := goDropScene(t)

	// The first event is held in the Handler: the client's socket fills
	// behind it, and its writer waits in a write.
	var disconnects atomic.Int64
	x, openGate := h.dialDropped(t, bus.OnDisconnect(func(error) { disconnects.Add(1) }))
	emitted := make(chan error, 1)
	go func() {
		for i := range events {
			if err := x.Emit("n", i); err != nil {
				emitted <- err
				return
			}
		}
		emitted <- nil
	}()
	routertest.WaitFor(t, "the client's writer to wait in a write", func() bool {
		return routertest.StacksShow("[IO wait", "(*session).writeChunks")
	})
	h.floodUntilDropped(t)

	// The client reads on to the Error frame. Then it waits for its
	// write (or, before, closed at once, cutting it).
	openGate()
	routertest.WaitFor(t, "the client to read the Error frame", func() bool {
		return disconnects.Load() > 0 || routertest.StacksShow("[sync.Cond.Wait", "(*Client).lastWrite")
	})
	h.letGo()

	if err := <-emitted; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil {
		t.Errorf("Flush: %v", err)
	}
	recv.checkAll(t, events)
	// OnDisconnect runs on a goroutine of its own, maybe late.
	routertest.WaitFor(t, "the client's OnDisconnect", func() bool { return disconnects.Load() >= 1 })
	if d := disconnects.Load(); d != 1 {
		t.Errorf("the client lost %d connections; want the one it was dropped from", d)
	}
}

// TestReconnectAfterDropKeepsOrder: a Go client dropped as a slow
// consumer, whose earlier connection the server still reads (the
// Handler holds it), connects again; the new connection's events come
// after every event of the earlier one. The server waits, before it
// welcomes the new connection, until the earlier one's read loop has
// ended. Before, the new connection's events were delivered first, and
// the earlier one's after them: the sender's order broke.
func TestReconnectAfterDropKeepsOrder(t *testing.T) {
	const half = 300
	h, recv := goDropScene(t)

	// The first event is held in the Handler; the first half waits
	// behind it, all written, in the socket.
	var reconnects atomic.Int64
	x, openGate := h.dialDropped(t, bus.OnReconnect(func() { reconnects.Add(1) }))
	for i := range half {
		if err := x.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.floodUntilDropped(t)

	// The client reads to the Error frame, closes, and connects again:
	// at once before, and now the server waits with its Welcome.
	openGate()
	routertest.WaitFor(t, "the client to connect again", func() bool {
		return reconnects.Load() > 0 || routertest.StacksShow("", "(*Conn).awaitEarlier")
	})
	for i := half; i < 2*half; i++ {
		if err := x.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // time for the second half to overtake, where it can
	h.letGo()
	recv.checkAll(t, 2*half)
}

// goDropScene is the channel of the tests above, which drops a client
// that takes nothing for 500 ms past its high-water mark of 32 KiB, and
// a receiver of the "n" events.
func goDropScene(t *testing.T) (*holdingChannel, *ints) {
	t.Helper()
	h := newHoldingChannel(t, channel.Config{MaxPending: 64 << 10, StallTimeout: 500 * time.Millisecond})
	recv := new(ints)
	recv.listen(t, dial(t, h.ch, "receiver"))
	return h, recv
}
