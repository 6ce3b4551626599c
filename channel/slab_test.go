package channel_test

import (
	"bufio"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
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

// TestSparseSlabMemory sends a client that reads nothing one event out
// of each of 400 slabs of 64 KiB (as a client that listens to one event
// in a few hundred gets from NATS packs): the queue keeps copies of the
// few bytes it holds, not the slabs, and the client still gets each
// event intact.
func TestSparseSlabMemory(t *testing.T) {
	const slabs, perSlab = 400, 300
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New(), MaxPending: 64 << 20, Overflow: channel.OverflowDrop})
	nc, _ := rawHello(t, ch)
	data := append([]byte{0xc4, 200}, make([]byte, 200)...)
	// A full slab first, of more than the socket takes, so that what
	// follows waits in the queue.
	var full []byte
	for range 3000 {
		full = wire.AppendEvent(full, &wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A", Event: "e", Data: data})
	}
	for at := 0; at < len(full); {
		end := at + wire.HeaderLen + int(binary.BigEndian.Uint32(full[at:]))
		sendSlabFrame(ch, full, at, end)
		at = end
	}
	before := heapAfterGC()
	ids := make([]uuid.UUID, slabs)
	for i := range ids {
		slab, from, to := sparseSlab(perSlab, func(m *wire.Message) { m.Data = data }, func(m *wire.Message) { m.Data, ids[i] = data, m.ID })
		sendSlabFrame(ch, slab, from, to)
	}
	grew := int64(heapAfterGC()) - int64(before)
	if grew > 4<<20 {
		t.Errorf("the heap grew by %d KiB for %d queued events of %d bytes: the queue keeps their slabs of 64 KiB alive", grew>>10, slabs, 206)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := wire.NewFrameReader(bufio.NewReader(nc), 0)
	for i := 0; i < 3000+slabs; i++ {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		h, err := wire.ParseEvent(f[wire.HeaderLen:])
		if err != nil || len(h.Data) != len(data) {
			t.Fatalf("frame %d: %d bytes of data, err %v", i, len(h.Data), err)
		}
		if i >= 3000 && uuid.UUID(h.ID) != ids[i-3000] {
			t.Fatalf("event %d of the slabs: id %v, want %v", i-3000, uuid.UUID(h.ID), ids[i-3000])
		}
	}
	// What the copies added to the queue's cost left it with them.
	routertest.WaitFor(t, "every frame counted and nothing pending", func() bool {
		for _, ci := range ch.ClientInfos() {
			if ci.Name == "raw" {
				return ci.FramesOut == 3000+slabs+1 && ci.Pending == 0
			}
		}
		return false
	})
}

// TestSparseSlabRing retains one event out of each of 400 slabs of
// 64 KiB (as a ring gets from NATS packs whose other events came by
// multicast first): the ring keeps copies of them, not the slabs, and a
// client that asks for history gets each intact and in order.
func TestSparseSlabRing(t *testing.T) {
	const slabs, perSlab = 400, 300
	ch := listen(t, retaining(64<<20))
	pad := append([]byte{0xc4, 200}, make([]byte, 200)...)
	before := heapAfterGC()
	for i := range slabs {
		slab, from, to := sparseSlab(perSlab, func(m *wire.Message) { m.Event, m.Data = "pad", pad },
			func(m *wire.Message) { m.Event, m.Data = "n", []byte{0xcd, byte(i >> 8), byte(i)} })
		sendSlabFrame(ch, slab, from, to)
	}
	if got := ch.Stats().Retained; got != slabs {
		t.Fatalf("%d events retained, want %d", got, slabs)
	}
	if grew := int64(heapAfterGC()) - int64(before); grew > 4<<20 {
		t.Errorf("the heap grew by %d KiB for %d retained events: the ring keeps their slabs of 64 KiB alive", grew>>10, slabs)
	}
	var history ints
	c := dialWith(t, ch, "history", bus.Since(time.Minute))
	history.listen(t, c)
	routertest.WaitFor(t, "the retained events", func() bool { return history.count() == slabs })
	checkExactly(t, history.values(), slabs)
}

// sparseSlab makes a slab of n events of channel A, one after the other
// as in a NATS pack: other sets each one's name and data, but for the
// middle one, which middle sets. It returns where that one's frame lies.
func sparseSlab(n int, other, middle func(*wire.Message)) (slab []byte, from, to int) {
	for j := range n {
		m := &wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A", Event: "e"}
		if j == n/2 {
			middle(m)
			from = len(slab)
		} else {
			other(m)
		}
		slab = wire.AppendEvent(slab, m)
		if j == n/2 {
			to = len(slab)
		}
	}
	return slab, from, to
}

// sendSlabFrame sends the event whose frame is slab[from:to] to ch's
// clients, as one that lies in slab.
func sendSlabFrame(ch *channel.Channel, slab []byte, from, to int) {
	var ev channel.Event
	ev.SetFrame(slab[from:to:to], slab, nil)
	ch.SendEvent(&ev, nil)
}

// heapAfterGC is what the heap holds once collected.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
