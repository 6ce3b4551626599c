package channel_test

import (
	"bufio"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestSlabEvents sends the events of one slab (as a NATS pack's body
// holds them) to a client that reads nothing until all are queued, so
// that they wait in its queue sharing entries: the client gets every
// frame intact and in order, and the server counts each of them.
func TestSlabEvents(t *testing.T) {
	const n = 3000 // about 600 KB: more than the socket takes
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "A", Node: node, MaxPending: 16 << 20, Overflow: channel.OverflowDrop})
	nc, _ := rawHello(t, ch)
	var slab []byte
	ids := make([]uuid.UUID, n)
	var ends []int
	for i := range ids {
		ids[i] = uuid.New()
		slab = wire.AppendEvent(slab, &wire.Message{ID: ids[i], Origin: uuid.New(), Sender: uuid.New(), Channel: "A",
			Event: "e", Data: append([]byte{0xc4, 128}, make([]byte, 128)...)})
		ends = append(ends, len(slab))
	}
	start := 0
	for _, end := range ends {
		var ev channel.Event
		ev.SetFrame(slab[start:end:end], slab, nil)
		ch.SendEvent(&ev, nil)
		start = end
	}
	info := func() channel.ClientInfo {
		for _, ci := range ch.ClientInfos() {
			if ci.Name == "raw" {
				return ci
			}
		}
		t.Fatal("the client is gone")
		return channel.ClientInfo{}
	}
	if ci := info(); ci.Pending == 0 {
		t.Fatalf("nothing waits for the client (%d frames out): the test shows nothing", ci.FramesOut)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := wire.NewFrameReader(bufio.NewReader(nc), 0)
	for i, id := range ids {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		h, err := wire.ParseEvent(f[wire.HeaderLen:])
		if err != nil || uuid.UUID(h.ID) != id || len(h.Data) != 130 {
			t.Fatalf("event %d: id %v, %d bytes of data, err %v; want id %v, 130 bytes", i, uuid.UUID(h.ID), len(h.Data), err, id)
		}
	}
	routertest.WaitFor(t, "every frame counted", func() bool {
		ci := info()
		return ci.FramesOut == n+1 && ci.Pending == 0 // the Welcome and the events
	})
	if ci := info(); ci.BytesOut < uint64(len(slab)) || ci.Dropped != 0 {
		t.Errorf("%d bytes out, %d dropped; want at least %d bytes, none dropped", ci.BytesOut, ci.Dropped, len(slab))
	}
}
