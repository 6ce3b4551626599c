package router_test

import (
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSSlowListenerLosesNothing: a burst that crosses NATS to a
// server whose subscriber reads slowly (its listener works 20 µs per
// event) arrives whole and in order, and the subscriber is never
// dropped: a subscriber past its high-water mark holds the link's
// subscription back, and what NATS sends meanwhile waits in nats.go's
// pending buffer, which the burst fits, instead of in the subscriber's
// queue up to maxpending.
func TestNATSSlowListenerLosesNothing(t *testing.T) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := natsNode(t, url)
	// Small queues: the burst passes the marks even with the race
	// detector slowing the publisher.
	s2 := routertest.NewServer(t, natsMembers(url, "", `"maxframe": 16384, "maxpending": 65536, `+bridged))
	waitNATS(t, s1, s2)
	var sub, pubc counter
	cl := sub.dial(t, s2, "A", bus.QueueLen(64))
	probeRec := routertest.Record(t, cl, "probe")
	sub.listen(t, cl, "seq", 20*time.Microsecond)
	pub := pubc.dial(t, s1, "A")
	probe(t, pub, probeRec)

	n := 20_000
	emitAll(t, pub, "seq", n)
	sub.wait(t, "the subscriber across NATS", n)
	pubc.check(t, "the publisher", 0)
	if st := stats(t, s2, "A"); st.SlowConsumers != 0 || st.Dropped != 0 {
		t.Errorf("server 2: %d slow consumers, %d frames dropped; want none", st.SlowConsumers, st.Dropped)
	}
	if st := natsStats(t, s2); st.EventsIn < uint64(n) {
		t.Errorf("server 2 took %d events from NATS, want at least %d", st.EventsIn, n)
	}
}
