package router_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSAndMulticast: with both links on, every event reaches the
// other server over both, and is delivered once, in the order sent.
func TestNATSAndMulticast(t *testing.T) { bothFormats(t, natsAndMulticast(500)) }

// TestNATSAndMulticastBurst: the same for a burst emitted as fast as the
// servers take it, many times the ids that the dedup remembers with one
// link (recentNet): NATS brings its copies far behind multicast, and
// each is still dropped, none forgotten early.
func TestNATSAndMulticastBurst(t *testing.T) { bothFormats(t, natsAndMulticast(30000)) }

func natsAndMulticast(n int) func(t *testing.T, pack string) {
	return func(t *testing.T, pack string) { testNATSAndMulticast(t, pack, n) }
}

func testNATSAndMulticast(t *testing.T, pack string, n int) {
	mcasttest.Need(t)
	ns := startNATS(t, 0)
	port := mcasttest.Port()
	if pack != "" {
		pack = ", " + pack
	}
	members := netMembers(port, "both", fmt.Sprintf(`"nats": {"url": %q%s},
"channels": {"A": {"propagatetonet": true, "propagatetonats": true, "acceptfromnats": true}}`, ns.ClientURL(), pack))
	s1, s2 := routertest.NewServer(t, members), routertest.NewServer(t, members)
	waitPeers(t, s1, s2)
	waitNATS(t, s1, s2)
	pub := s1.Dial(t, "A", bus.Name("pub"))
	r := routertest.Record(t, s2.Dial(t, "A", bus.Name("sub")), ".*")
	probe(t, pub, r)

	burst(t, pub, n)
	r.WaitCount(t, "n", n)
	// Both links have delivered what they carry once the NATS link and
	// the multicast link have each brought the fence's event.
	routertest.WaitFor(t, "both links to carry every event", func() bool {
		st, _ := s2.NATSStats()
		return st.EventsIn >= uint64(n) && s2.NetStats().Link.Delivered+s2.NetStats().Link.Duplicates >= uint64(n)
	})
	routertest.Fence(t, s2, "A", r)
	got := dataOf(t, r, "n")
	sorted := slices.Sorted(slices.Values(got))
	checkSeq(t, "events over both links", sorted, n)
	if !slices.Equal(got, sorted) {
		t.Errorf("the order differs from the order sent")
	}
	// Every event came twice: the dedup dropped one copy of each, and
	// counted it on the link that brought it second; each link
	// delivered the events it brought first, and nothing else.
	crossed := uint64(r.Count("n") + r.Count("probe"))
	var already, delivered uint64
	routertest.WaitFor(t, "a copy of every event counted delivered_already", func() bool {
		st, _ := s2.NATSStats()
		net := s2.NetStats()
		already = st.DeliveredAlready + net.DeliveredAlready
		delivered = net.Delivered + st.EventsIn - st.DeliveredAlready
		return already >= crossed && delivered >= crossed
	})
	if already != crossed || delivered != crossed {
		t.Errorf("%d copies counted delivered_already and %d events delivered by the links; want %d and %d",
			already, delivered, crossed, crossed)
	}
	st, _ := s2.NATSStats()
	if cut := s2.NetStats().DedupCut; cut != 0 {
		t.Errorf("the dedup forgot %d ids early", cut)
	}
	t.Logf("over NATS %d events (%d delivered already), over multicast %d (%d delivered already); delivered %d",
		st.EventsIn, st.DeliveredAlready, s2.NetStats().Link.Delivered, s2.NetStats().DeliveredAlready, len(got))
}
