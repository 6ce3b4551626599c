package multicast

import (
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
