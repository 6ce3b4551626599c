package router_test

import (
	"fmt"
	"testing"

	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNetReloadKeepsEvents streams events from one server to another
// over multicast, inside the namespace, while reloads swap the first
// server's link again and again: an event handed to a link that the
// reload is closing goes to the one that took over, so every event
// arrives, once, in order, none is counted lost, and the counters go on.
func TestNetReloadKeepsEvents(t *testing.T) {
	const swaps = 6
	s1, _, n := streamThroughNetSwaps(t, swaps, 500, false)
	if c := logCount(s1, "configuration reloaded"); c != swaps {
		t.Errorf("%d reloads, want %d", c, swaps)
	}
	// The link's counters are the node's: they go on across the swaps.
	if st := s1.NetStats(); st.SendFailed != 0 || st.Link.MessagesSent < uint64(n) {
		t.Errorf("send_failed %d, messages_sent %d of the %d sent", st.SendFailed, st.Link.MessagesSent, n)
	}
}

// TestNetReceiverReloadKeepsEvents: the same stream while reloads swap
// the receiving server's link. The links of a node share its order of
// datagrams; a gap that the old link saw is still repaired, or skipped
// and counted, by the new one, so the stream never stalls behind it.
func TestNetReceiverReloadKeepsEvents(t *testing.T) {
	_, s2, _ := streamThroughNetSwaps(t, 4, 5000, true)
	if st := s2.NetStats(); st.Link.Lost != 0 || st.Link.Gaps != 0 {
		t.Errorf("the receiver lost %d datagrams, %d gaps open", st.Link.Lost, st.Link.Gaps)
	}
}

// streamThroughNetSwaps streams events from a server s1 to a server s2
// over multicast while swaps reloads, one each time every more events
// have been emitted, swap the link of s1, or of s2 with receiver; it
// checks that every event of the n emitted reached s2 once, in order.
func streamThroughNetSwaps(t *testing.T, swaps int, every int64, receiver bool) (s1, s2 *routertest.Server, n int) {
	t.Helper()
	port := mcasttest.Port()
	chans := `"channels": {"A": {"propagatetonet": true}}`
	s1 = netServer(t, port, "t", chans)
	s2 = netServer(t, port, "t", chans)
	waitPeers(t, s1, s2)
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), "seq")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))
	reloaded := s1
	if receiver {
		reloaded = s2
	}
	stream := streamSeq(pub)
	for i := range swaps {
		stream.flow(t, every)
		// gaptimeout is one of the keys that reopen the link.
		members := fmt.Sprintf(`"gaptimeout": "%ds", %s`, 2+i%2, chans)
		if _, err := reloaded.Reload(reloaded.ParseConfig(t, netMembers(port, "t", members))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	stream.flow(t, every)
	n = stream.end(t)
	far.WaitCount(t, "seq", n)
	checkSeq(t, fmt.Sprintf("%d events across %d swaps", n, swaps), dataOf(t, far, "seq"), n)
	return s1, s2, n
}
