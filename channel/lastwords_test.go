package channel_test

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestDroppedClientsEventsHandled: the events that a client sent before
// it was dropped as a slow consumer, still unread in its socket then,
// are handled as any other. The server closes only its writing half
// after the error frame, and reads on up to the client's own close;
// before, it closed the socket, and the client took events that nobody
// read for delivered. It reads on past the grace of a second, too, for
// as long as the Handler holds the read loop ("held").
func TestDroppedClientsEventsHandled(t *testing.T) {
	t.Run("prompt", func(t *testing.T) { droppedClientsEvents(t, 0) })
	t.Run("held", func(t *testing.T) { droppedClientsEvents(t, 1500*time.Millisecond) })
}

// droppedClientsEvents is TestDroppedClientsEventsHandled with the
// Handler holding the dropped client's first event for held after the
// client closed.
func droppedClientsEvents(t *testing.T, held time.Duration) {
	const events = 300
	// The Handler holds the dropped client's first event until the test
	// lets it go, so that the others wait unread in its socket.
	release := make(chan struct{})
	var holding atomic.Bool
	node := uuid.New()
	var ch *channel.Channel
	ch = listen(t, channel.Config{Name: "A", Node: node, MaxPending: 64 << 10, Overflow: channel.OverflowDrop,
		Handler: func(from *channel.Conn, ev *channel.Event) {
			if from.Info().Name == "dropped" && holding.CompareAndSwap(false, true) {
				<-release
			}
			ch.SendEvent(ev, from)
		}})
	letGo := sync.OnceFunc(func() { close(release) })
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

	// The client to drop speaks version 1, which knows no pings, and
	// reads nothing until it is dropped.
	x := rawHelloTo(t, ch, wire.Hello{Version: 1, Name: "dropped"})
	var batch []byte
	first, _ := x.event(node, "A", "first", []byte{0xc0})
	batch = append(batch, first...)
	for i := range events {
		f, _ := x.event(node, "A", "n", []byte{0xcd, byte(i >> 8), byte(i)}) // msgpack uint16
		batch = append(batch, f...)
	}
	if _, err := x.nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the Handler to hold the first event", holding.Load)

	// Another client fills the dropped one's queue past maxpending.
	flood := dial(t, ch, "flood")
	data := make([]byte, 1024)
	deadline := time.Now().Add(30 * time.Second)
	for ch.Stats().SlowConsumers == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client was never dropped as a slow consumer")
		}
		for range 16 {
			if err := flood.Emit("f", data); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The dropped client reads up to its error frame and the end of the
	// stream, and closes, as the Go client does.
	var code wire.ErrorCode
	var readErr error
	for readErr == nil {
		ty, body, err := x.next(10 * time.Second)
		switch {
		case errors.Is(err, io.EOF):
			readErr = io.EOF
		case err != nil:
			readErr = err
		case ty == wire.FrameError:
			if e, err := wire.DecodeError(body); err == nil {
				code = e.Code
			}
		}
	}
	x.nc.Close()
	time.Sleep(held)
	letGo()

	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	for deadline := time.Now().Add(10 * time.Second); count() < events && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if len(got) != events {
		t.Errorf("the receiver got %d of the %d events the dropped client sent", len(got), events)
	}
	for i, n := range got {
		if n != i {
			t.Errorf("event %d is number %d", i, n)
			break
		}
	}
	mu.Unlock()
	if code != wire.CodeSlowConsumer || readErr != io.EOF {
		t.Errorf("the dropped client read error code %v, then %v; want %v, then EOF", code, readErr, wire.CodeSlowConsumer)
	}
	routertest.WaitFor(t, "the dropped client to be gone", func() bool { return ch.Client(x.id) == nil })
}
