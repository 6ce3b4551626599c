package channel_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestStatsPending: a channel's pending is what is queued for its
// clients, the sum of their pending, and a client that never reads
// makes it grow.
func TestStatsPending(t *testing.T) {
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "A", Node: node, MaxPending: 8 << 20})
	slow, _ := rawHello(t, ch)
	_ = slow // never read
	pub, pubID := rawHello(t, ch)
	frame := wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node, Sender: pubID, Channel: "A", Event: "e",
		Data: append([]byte{0xc5, 0x40, 0x00}, make([]byte, 64<<8)...)})
	sum := func() int {
		n := 0
		for _, ci := range ch.ClientInfos() {
			n += ci.Pending
		}
		return n
	}
	sent := uint64(0)
	for sent < 200 && ch.Stats().Pending < 1<<20 {
		if _, err := pub.Write(frame); err != nil {
			t.Fatal(err)
		}
		sent++
		routertest.WaitFor(t, "the event to be routed", func() bool { return ch.Stats().EventsIn == sent })
	}
	// The writer of the slow client may still be filling its socket:
	// compare once both reads agree, which they do when nothing moves.
	routertest.WaitFor(t, "stats' pending to be the clients' sum", func() bool {
		st := ch.Stats().Pending
		return st == sum() && st == ch.Stats().Pending
	})
	if st := ch.Stats().Pending; st < 1<<20 {
		t.Errorf("pending %d after the never-reading client was sent %d events of %d bytes, want at least 1 MiB", st, sent, len(frame))
	}
}
