package router_test

import (
	"fmt"
	"testing"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSReloadKeepsOrder streams events from one server to another
// through NATS while reloads swap the first server's link again and
// again, from one format to the other: every event arrives, once, in
// the order it was sent, and none is counted lost.
func TestNATSReloadKeepsOrder(t *testing.T) {
	ns := startNATS(t, 0)
	s1, s2 := natsNode(t, ns.ClientURL()), natsNode(t, ns.ClientURL())
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), "seq")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))

	const swaps = 8
	stream := streamSeq(pub)
	for i := range swaps {
		// Let events flow between two swaps, in both formats.
		stream.flow(t, 500)
		extra := fmt.Sprintf(`"name": "swap %d"`, i)
		if i%2 == 0 {
			extra += `, "pack": true`
		}
		if _, err := s1.Reload(s1.ParseConfig(t, natsMembers(ns.ClientURL(), extra, bridged))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	stream.flow(t, 500)
	n := stream.end(t)
	far.WaitCount(t, "seq", n)
	checkSeq(t, fmt.Sprintf("%d events across %d swaps", n, swaps), dataOf(t, far, "seq"), n)
	if c := logCount(s1, "NATS link opened"); c != swaps+1 {
		t.Errorf("the link was opened %d times, want %d", c, swaps+1)
	}
	// The counters go on across the swaps: every event is counted out,
	// the probes too, and none lost.
	if st := natsStats(t, s1); st.EventsOut < uint64(n) || st.Dropped != 0 || st.SendFailed != 0 {
		t.Errorf("events_out %d of the %d sent, dropped %d, send_failed %d", st.EventsOut, n, st.Dropped, st.SendFailed)
	}
	// Each swap begins a numbering of its own: the receiver counts none
	// of its events missed.
	if st := natsStats(t, s2); st.MissedIn != 0 {
		t.Errorf("server 2 counted %d events missed", st.MissedIn)
	}
}
