package channel_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// floodRaw has pub send n events of about 1 KiB on ch, and waits until
// the channel has read all it was sent, these and before.
func floodRaw(t *testing.T, ch *channel.Channel, pub *rawClient, node uuid.UUID, n int) {
	t.Helper()
	data := append([]byte{0xc5, 0x04, 0x00}, make([]byte, 1024)...) // bin 16 of 1024 bytes
	want := ch.Stats().EventsIn + uint64(n)
	for range n {
		f, _ := pub.event(node, ch.Name(), "n", data)
		if _, err := pub.nc.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the channel to read every event", func() bool { return ch.Stats().EventsIn == want })
}

// TestShutdownDeadlineCountsDropped checks that what a client that never
// reads had not been sent when the shutdown deadline cut it off is
// counted as dropped (docs/guarantees.md): what it reads after plus
// Dropped is every event sent. It failed before: the frames of the write
// the deadline broke, and the queue behind them, were let go uncounted,
// and Dropped stayed 0.
func TestShutdownDeadlineCountsDropped(t *testing.T) {
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "A", Node: node, MaxPending: 64 << 20, Overflow: channel.OverflowDrop})
	slow := rawHelloTo(t, ch, wire.Hello{Version: 2})
	pub := rawHelloTo(t, ch, wire.Hello{Version: 2})
	const n = 2000 // far more than the socket holds
	floodRaw(t, ch, pub, node, n)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ch.Shutdown(ctx, wire.CodeShutdown, "test"); err == nil {
		t.Fatal("the queue was written within the deadline; the test needs a client that does not read")
	}
	got, _ := slow.readEvents(2 * time.Second)
	st := ch.Stats()
	t.Logf("the client read %d of %d events; dropped %d", got, n, st.Dropped)
	if uint64(got)+st.Dropped != n {
		t.Fatalf("read %d + dropped %d != %d sent", got, st.Dropped, n)
	}
}

// TestOverflowDropCountsDropped checks that with overflow "drop", every
// event sent to a client that never reads, and is dropped at maxpending,
// is either read by it or counted as dropped. It failed before: the
// frames of the write in progress when the client was closed were let go
// uncounted.
func TestOverflowDropCountsDropped(t *testing.T) {
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "A", Node: node, MaxPending: 1 << 20, Overflow: channel.OverflowDrop})
	slow := rawHelloTo(t, ch, wire.Hello{Version: 2})
	pub := rawHelloTo(t, ch, wire.Hello{Version: 2})
	const n = 3000 // three times maxpending
	// First more than its socket holds and less than maxpending, so that
	// the writer is cut off mid-write when the client is dropped.
	const first = 400
	floodRaw(t, ch, pub, node, first)
	routertest.WaitFor(t, "the socket to fill", func() bool { return ch.Stats().Pending > 0 })
	floodRaw(t, ch, pub, node, n-first)
	// Closed once it has not read its Error frame within a second.
	routertest.WaitFor(t, "the slow client to be dropped", func() bool { return ch.Stats().Clients == 1 })
	got, code := slow.readEvents(2 * time.Second)
	st := ch.Stats()
	t.Logf("the client read %d of %d events (error %v); dropped %d, slow consumers %d", got, n, code, st.Dropped, st.SlowConsumers)
	if st.SlowConsumers != 1 {
		t.Fatalf("slow consumers %d, want 1", st.SlowConsumers)
	}
	if uint64(got)+st.Dropped != n {
		t.Fatalf("read %d + dropped %d != %d sent", got, st.Dropped, n)
	}
}
