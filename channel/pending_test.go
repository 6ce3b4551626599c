package channel_test

import (
	"bufio"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// rawHello connects to ch without a client library and says hello.
func rawHello(t *testing.T, ch *channel.Channel) (net.Conn, uuid.UUID) {
	t.Helper()
	nc, err := net.Dial("unix", ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	id := uuid.New()
	if _, err := nc.Write(wire.AppendHello(nil, &wire.Hello{Version: 1, ClientID: id, Name: "raw"})); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := wire.NewFrameReader(bufio.NewReaderSize(nc, 16), 0).ReadFrame(); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	return nc, id
}

// TestNeverReadingClientHeap fills the queue of a client that never
// reads to just under maxpending, and checks that what the server holds
// for it on its heap, found after a collection, stays within what
// pending counts, which stays within maxpending: the buffers and the
// bookkeeping of every entry are counted.
func TestNeverReadingClientHeap(t *testing.T) {
	const maxPending = 8 << 20
	node := uuid.New()
	// Overflow drop: under block the publisher would be held at the
	// high-water mark, and the queue would never come near maxpending.
	ch := listen(t, channel.Config{Name: "A", Node: node, MaxPending: maxPending, Overflow: channel.OverflowDrop})
	slow, _ := rawHello(t, ch)
	_ = slow // never read
	pub, pubID := rawHello(t, ch)
	frame := wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node, Sender: pubID, Channel: "A", Event: "e",
		Data: append([]byte{0xc4, 128}, make([]byte, 128)...)})
	burst := make([]byte, 0, 64*len(frame))
	for range 64 {
		burst = append(burst, frame...)
	}
	pending := func() int {
		for _, ci := range ch.ClientInfos() {
			if ci.Name == "raw" && ci.FramesIn == 0 {
				return ci.Pending
			}
		}
		return -1
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	sent := uint64(0)
	for pending() < maxPending*15/16 {
		if _, err := pub.Write(burst); err != nil {
			t.Fatal(err)
		}
		sent += 64
		routertest.WaitFor(t, "the burst to be routed", func() bool { return ch.Stats().EventsIn == sent })
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown, p := int64(ms.HeapAlloc)-int64(base), pending()
	t.Logf("%d events of %d bytes sent; pending %d bytes (%.2f of maxpending); heap grew by %d bytes (%.2f of pending)",
		sent, len(frame), p, float64(p)/maxPending, grown, float64(grown)/float64(p))
	if p < 0 || p > maxPending {
		t.Fatalf("pending %d, want the client still there and within maxpending %d", p, maxPending)
	}
	// Slack for what else the heap holds: read buffers, the client list.
	if slack := int64(256 << 10); grown > int64(p)+slack {
		t.Errorf("the heap grew by %d bytes holding %d pending: more than pending counts", grown, p)
	}
}
