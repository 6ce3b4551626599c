package channel_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestReconnectAfterDropKeepsOrder: a Go client dropped as a slow
// consumer, whose earlier connection the server still reads (the
// Handler holds it), connects again; the new connection's events come
// after every event of the earlier one. The server waits, before it
// welcomes the new connection, until the earlier one's read loop has
// ended. Before, the new connection's events were delivered first, and
// the earlier one's after them: the sender's order broke.
func TestReconnectAfterDropKeepsOrder(t *testing.T) {
	const half = 300
	release := make(chan struct{})
	letGo := sync.OnceFunc(func() { close(release) })
	var holding atomic.Bool
	node := uuid.New()
	var ch *channel.Channel
	ch = listen(t, channel.Config{Name: "A", Node: node, MaxPending: 64 << 10, StallTimeout: 500 * time.Millisecond,
		Handler: func(from *channel.Conn, ev *channel.Event) {
			if from.Info().Name == "dropped" && holding.CompareAndSwap(false, true) {
				<-release
			}
			ch.SendEvent(ev, from)
		}})
	t.Cleanup(letGo) // before the channel closes, which waits for the Handler

	var mu sync.Mutex
	var got []int
	recv := dial(t, ch, "receiver")
	if _, err := recv.On("n", func(m bus.Message) {
		var n int
		if err := m.Decode(&n); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	var reconnects atomic.Int64
	x, err := bus.Dial(context.Background(), "A", bus.Socket(ch.Path()), bus.Name("dropped"), bus.QueueLen(1),
		bus.OnReconnect(func() { reconnects.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate)
	if _, err := x.On("f", func(bus.Message) { <-gate }); err != nil {
		t.Fatal(err)
	}
	// The first event is held in the Handler; the first half waits
	// behind it, all written, in the socket.
	if err := x.Emit("first", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the Handler to hold the first event", holding.Load)
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

	// Another client fills the client's queue past its high-water mark,
	// and it takes nothing for stalltimeout.
	flood := dial(t, ch, "flood")
	data := make([]byte, 1024)
	deadline := time.Now().Add(30 * time.Second)
	for st := ch.Stats(); st.StallTimeouts+st.SlowConsumers == 0; st = ch.Stats() {
		if time.Now().After(deadline) {
			t.Fatal("the client was never dropped")
		}
		for range 16 {
			if err := flood.Emit("f", data); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The client reads to the Error frame, closes, and connects again:
	// at once before, and now the server waits with its Welcome.
	openGate()
	routertest.WaitFor(t, "the client to connect again", func() bool {
		return reconnects.Load() > 0 || stacksShow("", "(*Conn).awaitEarlier")
	})
	for i := half; i < 2*half; i++ {
		if err := x.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // time for the second half to overtake, where it can
	letGo()

	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	for deadline := time.Now().Add(10 * time.Second); count() < 2*half && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2*half {
		t.Errorf("the receiver got %d of the %d events", len(got), 2*half)
	}
	for i, n := range got {
		if n != i {
			t.Errorf("event %d is number %d: the client's order broke across its reconnection", i, n)
			break
		}
	}
}
