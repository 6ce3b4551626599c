package router_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSReload: a reload that changes the nats settings swaps the
// connection, off and on again too, and to packs, and the local clients
// stay connected throughout.
func TestNATSReload(t *testing.T) {
	ns1, ns2 := startNATS(t, 0), startNATS(t, 0)
	s1, s2 := natsNode(t, ns1.ClientURL()), natsNode(t, ns2.ClientURL())
	var drops atomic.Int32
	pub := s1.Dial(t, "A", bus.OnDisconnect(func(error) { drops.Add(1) }))
	id := pub.ID()
	local := routertest.Record(t, s1.Dial(t, "A", bus.OnDisconnect(func(error) { drops.Add(1) })), ".*")

	reload := func(members string) []string {
		t.Helper()
		rep, err := s1.Reload(s1.ParseConfig(t, members))
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		return rep.Settings
	}
	// To the NATS server of s2: the link is swapped, and bridges.
	if got := reload(natsMembers(ns2.ClientURL(), "", bridged)); !slices.Contains(got, "nats.url") {
		t.Errorf("the reload reports the settings %v, without nats.url", got)
	}
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), ".*"))

	// Off: no link, local delivery as before.
	reload(bridged)
	if _, ok := s1.NATSStats(); ok {
		t.Error("a NATS link without nats.url")
	}
	if err := pub.Emit("while-off", nil); err != nil {
		t.Fatal(err)
	}
	local.WaitCount(t, "while-off", 1)

	// On again, with another prefix on both sides.
	reload(natsMembers(ns2.ClientURL(), `"prefix": "other"`, bridged))
	if _, err := s2.Reload(s2.ParseConfig(t, natsMembers(ns2.ClientURL(), `"prefix": "other"`, bridged))); err != nil {
		t.Fatal(err)
	}
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), ".*"))

	// Packs on, on s1 alone: the link is swapped again, and s2, which
	// does not pack, reads them.
	far := routertest.Record(t, s2.Dial(t, "A"), "packed")
	if got := reload(natsMembers(ns2.ClientURL(), `"prefix": "other", "pack": true`, bridged)); !slices.Contains(got, "nats.pack") {
		t.Errorf("the reload reports the settings %v, without nats.pack", got)
	}
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))
	const n = 2000
	for i := range n {
		if err := pub.Emit("packed", i); err != nil {
			t.Fatal(err)
		}
	}
	far.WaitCount(t, "packed", n)
	checkSeq(t, "packed after the reload", dataOf(t, far, "packed"), n)
	if st := natsStats(t, s1); st.MsgsOut >= st.EventsOut {
		t.Errorf("%d events went out in %d messages: no packs", st.EventsOut, st.MsgsOut)
	}

	if n := drops.Load(); n != 0 || pub.ID() != id {
		t.Errorf("local clients were disconnected %d times (client id %v, was %v)", n, pub.ID(), id)
	}
	if c := logCount(s1, "NATS link opened"); c != 4 {
		t.Errorf("the link was opened %d times, want 4", c)
	}
}

// TestNATSReloadInOutage: while its NATS server is away, a server keeps
// the events for NATS; a reload that moves it to another NATS server
// hands them to the new link, which sends them there first, in order,
// and nothing is dropped. A reload that turns NATS off drops what it
// kept, and counts it.
func TestNATSReloadInOutage(t *testing.T) {
	ns1, ns2 := startNATS(t, 0), startNATS(t, 0)
	s1, s2 := natsNode(t, ns1.ClientURL()), natsNode(t, ns2.ClientURL())
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), ".*")

	stopNATS(ns1)
	routertest.WaitFor(t, "the link to notice", func() bool { return !natsStats(t, s1).Connected })
	const n = 20
	for i := range n {
		if err := pub.Emit("kept", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the events to wait in the buffer", func() bool { return natsStats(t, s1).Buffered > 0 })
	if _, err := s1.Reload(s1.ParseConfig(t, natsMembers(ns2.ClientURL(), "", bridged))); err != nil {
		t.Fatal(err)
	}
	probe(t, pub, far) // after the kept events: they are all there by now
	checkSeq(t, "the events kept across the reload", dataOf(t, far, "kept"), n)
	if st := natsStats(t, s1); st.Dropped != 0 || st.EventsOut < n {
		t.Errorf("dropped %d, events_out %d; want 0 and at least %d", st.Dropped, st.EventsOut, n)
	}
	if c := logCount(s1, "go to the link that takes over"); c != 1 {
		t.Errorf("%d log lines about the hand-over, want 1", c)
	}

	// NATS away again, and then off: what was kept is dropped, counted.
	stopNATS(ns2)
	routertest.WaitFor(t, "the link to notice", func() bool { return !natsStats(t, s1).Connected })
	// One at a time, each in the buffer before the next goes: the
	// buffer grows by each event kept, and by nothing else while NATS
	// is away. The channel counts an event in before its handler puts
	// it in the buffer, and a loaded machine can hold the handler
	// between the two for longer than any fixed wait.
	buffered := natsStats(t, s1).Buffered
	for i := range n {
		if err := pub.Emit("lost", i); err != nil {
			t.Fatal(err)
		}
		routertest.WaitFor(t, fmt.Sprintf("event %d to wait in the buffer", i), func() bool {
			now := natsStats(t, s1).Buffered
			if now <= buffered {
				return false
			}
			buffered = now
			return true
		})
	}
	if _, err := s1.Reload(s1.ParseConfig(t, bridged)); err != nil {
		t.Fatal(err)
	}
	if c := logCount(s1, fmt.Sprintf(`the events waiting in its buffer are dropped" events=%d`, n)); c != 1 {
		t.Errorf("%d log lines about the %d events dropped with NATS turned off, want 1", c, n)
	}
}
