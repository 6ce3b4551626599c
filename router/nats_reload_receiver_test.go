package router_test

import (
	"fmt"
	"testing"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSReceiverReloadLosesNothing streams events from one server to
// another through NATS while reloads swap the receiving server's link
// again and again: what the old link had taken and not yet delivered is
// delivered before the new link delivers, and the messages both took
// once, so every event arrives once, in the order sent, and none is
// counted lost or dropped.
func TestNATSReceiverReloadLosesNothing(t *testing.T) {
	bothFormats(t, testNATSReceiverReload)
}

func testNATSReceiverReload(t *testing.T, pack string) {
	ns := startNATS(t, 0)
	s1, s2 := natsNode(t, ns.ClientURL(), pack), natsNode(t, ns.ClientURL(), pack)
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))

	const swaps = 4
	stream := streamSeq(pub)
	for i := range swaps {
		stream.flow(t, 5000)
		extra := fmt.Sprintf(`"name": "swap %d"`, i)
		if pack != "" {
			extra += ", " + pack
		}
		if _, err := s2.Reload(s2.ParseConfig(t, natsMembers(ns.ClientURL(), extra, bridged))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	stream.flow(t, 5000)
	n := stream.end(t)
	far.WaitCount(t, "seq", n)
	routertest.Fence(t, s2, "A", far)
	checkSeq(t, fmt.Sprintf("%d events across %d swaps of the receiver's link", n, swaps), dataOf(t, far, "seq"), n)
	if c := logCount(s2, "NATS link opened"); c != swaps+1 {
		t.Errorf("the receiver's link was opened %d times, want %d", c, swaps+1)
	}
	if st := natsStats(t, s2); st.MissedIn != 0 || st.DroppedIn != 0 {
		t.Errorf("server 2 counted %d events missed and %d messages dropped", st.MissedIn, st.DroppedIn)
	}
}

// TestNATSJetStreamReceiverReload is TestNATSReceiverReloadLosesNothing
// with the events taken from a JetStream consumer: the new link consumes
// the durable only once the old one has stopped, and puts in order what
// the old one's pull requests lost as it stopped, which NATS sends
// again, mixed with the next events.
//
// The stream keeps jsReloadMaxBytes, and drops its oldest events past
// it whether the consumer has taken them or not (docs/guarantees.md):
// the receiver, held up at each swap, would fall behind an unpaced
// publisher by more than that on a busy machine, and lose events for
// what the test does not test. So the publisher runs at most
// jsReloadAhead events past what the receiver has delivered: at under
// 1 KiB an event in either format, well within the stream.
func TestNATSJetStreamReceiverReload(t *testing.T) {
	bothFormats(t, testNATSJetStreamReceiverReload)
}

const (
	jsReloadMaxBytes = 4 << 20
	jsReloadAhead    = 4096
)

func testNATSJetStreamReceiverReload(t *testing.T, pack string) {
	ns := startJetStream(t)
	js := func(durable, name string) string {
		extra := fmt.Sprintf(`"jetstream": true, "durable": %q, "catchup": "300ms", "name": %q, "maxbytes": %d`,
			durable, name, jsReloadMaxBytes)
		if pack != "" {
			extra += ", " + pack
		}
		return natsMembers(ns.ClientURL(), extra, bridged)
	}
	s1 := routertest.NewServer(t, js("one", "s1"))
	s2 := routertest.NewServer(t, js("two", "s2"))
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))

	swaps, each := 6, int64(5000)
	if testing.Short() {
		swaps, each = 4, 3000
	}
	stream := streamSeqAhead(pub, func() int { return far.Count("seq") }, jsReloadAhead)
	for i := range swaps {
		stream.flow(t, each)
		if _, err := s2.Reload(s2.ParseConfig(t, js("two", fmt.Sprintf("swap %d", i)))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	stream.flow(t, each)
	n := stream.end(t)
	// The consumer may be behind the stream by up to jsReloadAhead
	// events (the race detector slows it most): wait while it moves.
	far.WaitCount(t, "seq", n)
	routertest.Fence(t, s2, "A", far)
	checkSeq(t, fmt.Sprintf("%d events across %d swaps of the receiver's link", n, swaps), dataOf(t, far, "seq"), n)
	if st := natsStats(t, s2); st.MissedIn != 0 || st.DroppedIn != 0 {
		t.Errorf("server 2 counted %d events missed and %d messages dropped", st.MissedIn, st.DroppedIn)
	}
}
