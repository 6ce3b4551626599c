package channel_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestDroppedGoClientsLastWriteDelivered: a Go client dropped as a slow
// consumer (here for stalltimeout) while it is in the middle of a write lets the write end
// before it closes, and the server, which reads on, delivers every
// event of it; the rest go on the next connection, in order. Before,
// the client closed at the Error frame, cut the write, and the events
// of it that the server had not read were lost.
func TestDroppedGoClientsLastWriteDelivered(t *testing.T) {
	const events = 5000
	// The Handler holds the dropped client's first event until the test
	// lets it go: its socket fills, and its writer waits in a write.
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

	// The client to drop stops taking the flood at its first event, with
	// a queue of one, until the gate opens.
	var disconnects atomic.Int64
	x, err := bus.Dial(context.Background(), "A", bus.Socket(ch.Path()), bus.Name("dropped"), bus.QueueLen(1),
		bus.OnDisconnect(func(error) { disconnects.Add(1) }))
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
	if err := x.Emit("first", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the Handler to hold the first event", holding.Load)
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
		return stacksShow("[IO wait", "(*session).writeChunks")
	})

	// Another client fills the dropped one's queue past its high-water
	// mark, and it takes nothing for stalltimeout.
	flood := dial(t, ch, "flood")
	data := make([]byte, 1024)
	deadline := time.Now().Add(30 * time.Second)
	for st := ch.Stats(); st.StallTimeouts+st.SlowConsumers == 0; st = ch.Stats() {
		if time.Now().After(deadline) {
			t.Fatal("the client was never dropped as a slow consumer")
		}
		for range 16 {
			if err := flood.Emit("f", data); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The client reads on to the Error frame. Then it waits for its
	// write (or, before, closed at once, cutting it).
	openGate()
	routertest.WaitFor(t, "the client to read the Error frame", func() bool {
		return disconnects.Load() > 0 || stacksShow("[sync.Cond.Wait", "(*Client).lastWrite")
	})
	letGo()

	if err := <-emitted; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	flushErr := x.Flush(ctx)
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
		t.Errorf("the receiver got %d of the %d events the dropped client emitted", len(got), events)
	}
	for i, n := range got {
		if n != i {
			t.Errorf("event %d is number %d", i, n)
			break
		}
	}
	mu.Unlock()
	if flushErr != nil {
		t.Errorf("Flush: %v", flushErr)
	}
	if d := disconnects.Load(); d != 1 {
		t.Errorf("the client lost %d connections; want the one it was dropped from", d)
	}
}

// stacksShow reports whether some goroutine is in state (the start of
// what its header's brackets hold) with call among its frames.
func stacksShow(state, call string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, state) && strings.Contains(g, call) {
			return true
		}
	}
	return false
}
