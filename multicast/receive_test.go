package multicast

import (
	"bytes"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestTopSequenceIsMalformed: a datagram of stream 0 numbered MaxUint64
// is dropped and counted malformed, as one numbered 0 is, and its
// sender's next datagrams are still handled. Before, it was held behind
// the gap up to it, handed on once the gap was skipped, and the
// window's next number wrapped to 0: every later datagram of the sender
// was dropped without being counted.
func TestTopSequenceIsMalformed(t *testing.T) {
	l, _ := configuredLink(t, NewNode(uuid.New(), 0), nil)
	var got []string
	l.deliver = func(_ uuid.UUID, msg []byte) { got = append(got, string(msg)) }
	peer := uuid.New()
	from := netip.MustParseAddrPort("10.0.0.2:4454")
	now := time.Now()
	l.handle(plainDatagram(peer, KindData, 1, []byte("one")), from, now, nil)
	l.handle(plainDatagram(peer, KindData, math.MaxUint64, []byte("top")), from, now, nil)
	if s := l.Stats(); s.Malformed != 1 {
		t.Errorf("datagram MaxUint64: malformed %d, want 1", s.Malformed)
	}
	now = now.Add(2 * l.cfg.GapTimeout)
	l.repairTick(now)
	before := l.Stats()
	l.handle(plainDatagram(peer, KindData, 2, []byte("two")), from, now, nil)
	after := l.Stats()
	if len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("delivered %q, want one and two (dropped %d -> %d, late %d -> %d)",
			got, before.Dropped(), after.Dropped(), before.Late, after.Late)
	}
}

// TestHeldDatagramRefusedAfterReloadIsCounted: a datagram held for its
// turn by one link of a node, and handed on by the link a reload opened
// with a smaller MaxMessage, fails to decode again; it is dropped and
// counted as it would have been had it arrived at the new link
// (bad_fragment). Before, it was dropped without a count.
func TestHeldDatagramRefusedAfterReloadIsCounted(t *testing.T) {
	node := NewNode(uuid.New(), 0)
	old, _ := configuredLink(t, node, func(c *Config) { c.MaxMessage = 1 << 20 })
	reloaded, _ := configuredLink(t, node, func(c *Config) { c.MaxMessage = 64 << 10 })
	var got []string // the links share the node's deliver, the last link's
	reloaded.deliver = func(_ uuid.UUID, msg []byte) { got = append(got, string(msg)) }
	peer := uuid.New()
	from := netip.MustParseAddrPort("10.0.0.2:4454")
	now := time.Now()
	big := Record{ID: uuid.New(), Count: 2, Total: 100 << 10, Payload: bytes.Repeat([]byte{1}, 1000)}
	h := Header{Kind: KindData, Records: 1, Cluster: ClusterIDOf("lab"), Node: peer, Seq: 3}
	held := AppendRecord(AppendHeader(nil, &h), &big)

	old.handle(plainDatagram(peer, KindData, 1, []byte("one")), from, now, nil)
	old.handle(held, from, now, nil) // held: 2 is missing
	before := reloaded.Stats()
	reloaded.handle(plainDatagram(peer, KindData, 2, []byte("two")), from, now, nil) // 2, then the held 3
	after := reloaded.Stats()
	if len(got) != 2 || got[1] != "two" {
		t.Errorf("delivered %q, want one and two", got)
	}
	if after.BadFragment != before.BadFragment+1 || after.Dropped() != before.Dropped()+1 {
		t.Errorf("datagram 3, with a message of %d bytes over the new bound: bad_fragment %d -> %d, dropped %d -> %d; want one more each",
			big.Total, before.BadFragment, after.BadFragment, before.Dropped(), after.Dropped())
	}
}
