package router_test

import (
	"testing"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSJetStreamFirstStart: a server that starts for the first time
// (its durable consumer does not exist yet) delivers the events stored
// since it started, those of its catch-up wait included, once that wait
// is over. Before, its new consumer took only the events stored after
// it was made, and those of the wait were lost, uncounted.
func TestNATSJetStreamFirstStart(t *testing.T) { bothFormats(t, testNATSJetStreamFirstStart) }

func testNATSJetStreamFirstStart(t *testing.T, pack string) {
	ns := startJetStream(t)
	s1 := routertest.NewServer(t, jsMembers(ns.ClientURL(), "one", "300ms", pack))
	pub := s1.Dial(t, "A")
	waitNATS(t, s1)
	s2 := routertest.NewServer(t, jsMembers(ns.ClientURL(), "two", "2s", pack))
	r := routertest.Record(t, s2.Dial(t, "A"), ".*")
	waitNATS(t, s2)
	const n = 10
	for i := range n {
		if err := pub.Emit("early", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the stream to hold them", func() bool { return natsStats(t, s1).EventsOut >= n })
	r.WaitCount(t, "early", n)
	if err := pub.Emit("after", 0); err != nil {
		t.Fatal(err)
	}
	r.WaitCount(t, "after", 1)
	routertest.Fence(t, s2, "A", r)
	checkSeq(t, "the events of the catch-up wait", dataOf(t, r, "early"), n)
}
