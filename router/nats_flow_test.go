package router_test

import (
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
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

// TestNATSDroppedIn: past a subscription's pending limits (lowered here
// to 64 messages) nats.go drops what NATS sends while a stopped local
// subscriber holds the link back; dropped_in counts each event lost, so
// that what the server delivered and what it counted as dropped make
// the whole burst, and the log says so once.
func TestNATSDroppedIn(t *testing.T) {
	router.SetNATSPendingLimits(t, 64, 0)
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := natsNode(t, url)
	s2 := routertest.NewServer(t, natsMembers(url, "", `"maxframe": 16384, "maxpending": 65536, `+bridged))
	waitNATS(t, s1, s2)
	all := routertest.Record(t, s2.Dial(t, "A"), ".*")
	stuck := s2.Dial(t, "A", bus.QueueLen(16))
	release := make(chan struct{})
	if _, err := stuck.On("seq", func(bus.Message) { <-release }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) }) // before the client closes
	pub := s1.Dial(t, "A")
	probe(t, pub, all)
	before := natsStats(t, s2)

	const n = 20_000
	emitAll(t, pub, "seq", n)
	routertest.WaitFor(t, "every event delivered or counted as dropped", func() bool {
		return uint64(all.Count("seq"))+natsStats(t, s2).DroppedIn-before.DroppedIn >= n
	})
	routertest.Fence(t, s2, "A", all)
	st := natsStats(t, s2)
	got, dropped := uint64(all.Count("seq")), st.DroppedIn-before.DroppedIn
	if dropped == 0 || got+dropped != n {
		t.Errorf("%d events delivered and %d counted as dropped; want some dropped and %d in all", got, dropped, n)
	}
	if in := st.EventsIn - before.EventsIn; in != got { // the fence went out, not in
		t.Errorf("the link delivered %d events, the subscriber heard %d", in, got)
	}
	if c := logCount(s2, "events past the subscription's pending limits are dropped"); c == 0 || uint64(c) > dropped {
		t.Errorf("%d log lines about the drops; want one per episode", c)
	}
}
