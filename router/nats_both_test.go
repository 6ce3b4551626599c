package router_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
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

// TestNATSAndMulticastOutage: with both links on, the events sent while
// NATS was away reach the other server over multicast at once, and over
// NATS once it is back, from the sender's buffer: long after the dedup's
// window, and after many more ids than it remembers at least. They are
// still delivered once: the dedup remembers them for as long as NATS is
// behind, whether NATS went away for both servers (the receiver's link
// is down) or only the sender lost it (the receiver no longer hears the
// sender over NATS, while it hears it over multicast); and with
// JetStream, whose consumer delivers them, catching up, after the
// receiver's own outage.
func TestNATSAndMulticastOutage(t *testing.T) {
	down := func(o *outage) func() {
		port := natsPort(o.ns)
		stopNATS(o.ns)
		return func() { startNATS(o.t, port, o.opts...) }
	}
	t.Run("NATS down", func(t *testing.T) { testNATSAndMulticastOutage(t, false, down) })
	t.Run("NATS down, JetStream", func(t *testing.T) { testNATSAndMulticastOutage(t, true, down) })
	t.Run("sender cut off", func(t *testing.T) {
		testNATSAndMulticastOutage(t, false, func(o *outage) func() {
			// A reload points the sender at a port where nothing
			// listens: its new link keeps what it sends. The receiver
			// stays connected, and stops hearing the sender over NATS.
			o.reload(fmt.Sprintf("nats://127.0.0.1:%d", freePort(t)))
			return func() { o.reload(o.ns.ClientURL()) }
		})
	})
}

// outage is a sender and a receiver with both links on, joined to NATS
// at ns.
type outage struct {
	t       *testing.T
	ns      *server.Server
	opts    []func(*server.Options) // ns's
	s1, s2  *routertest.Server
	members func(url, durable string) string
}

// reload points the sender at the NATS server at url.
func (o *outage) reload(url string) {
	o.t.Helper()
	if _, err := o.s1.Reload(o.s1.ParseConfig(o.t, o.members(url, "one"))); err != nil {
		o.t.Fatal(err)
	}
}

// testNATSAndMulticastOutage runs an outage of NATS for the sender that
// cut makes, and that the function it returns ends; with JetStream, if
// js.
func testNATSAndMulticastOutage(t *testing.T, js bool, cut func(*outage) func()) {
	mcasttest.Need(t)
	const window = time.Second
	router.SetDedupWindow(t, window)
	port := mcasttest.Port()
	o := &outage{t: t, members: func(url, durable string) string {
		extra := ""
		if js {
			extra = fmt.Sprintf(`, "jetstream": true, "durable": %q, "catchup": "300ms"`, durable)
		}
		// The sender waits for the receiver's reconnection to NATS for
		// peertimeout at most before it sends what it kept: the two
		// reconnect on their own schedules, a round (1 s) apart at
		// worst. 300 ms was not always enough, and NATS gave the kept
		// events to no one.
		return patientMembers(port, "both", "3s", fmt.Sprintf(`"nats": {"url": %q%s},
"channels": {"A": {"propagatetonet": true, "propagatetonats": true, "acceptfromnats": true}}`, url, extra))
	}}
	if js {
		dir := t.TempDir()
		o.opts = append(o.opts, func(o *server.Options) { o.JetStream, o.StoreDir = true, dir })
	}
	o.ns = startNATS(t, 0, o.opts...)
	o.s1 = routertest.NewServer(t, o.members(o.ns.ClientURL(), "one"))
	o.s2 = routertest.NewServer(t, o.members(o.ns.ClientURL(), "two"))
	s1, s2 := o.s1, o.s2
	waitPeers(t, s1, s2)
	waitNATS(t, s1, s2)
	pub := s1.Dial(t, "A")
	r := routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, r)

	probes := r.Count("probe")
	restore := cut(o)
	routertest.WaitFor(t, "the sender to notice", func() bool { return !natsStats(t, s1).Connected })
	before := natsStats(t, s2)
	// Over multicast, in three rounds a window and a half apart.
	const rounds, each = 3, 5000
	for round := range rounds {
		for i := range each {
			if err := pub.Emit("while-down", round*each+i); err != nil {
				t.Fatal(err)
			}
		}
		r.WaitCount(t, "while-down", (round+1)*each)
		time.Sleep(3 * window / 2)
	}
	const n = rounds * each

	restore()
	waitNATS(t, s1, s2)
	// For as long as they keep coming: with JetStream, on a loaded
	// machine under the race detector, 15,000 events took longer than
	// a fixed wait.
	came := func() uint64 { return natsStats(t, s2).EventsIn - before.EventsIn }
	if !routertest.WaitProgress(func() bool { return came() >= n }, came) {
		t.Fatalf("%d of the buffer's %d events came over NATS too, none more for 10 s", came(), n)
	}
	routertest.Fence(t, s2, "A", r)
	if got := r.Count("while-down"); got != n {
		t.Errorf("%d of the %d events sent during the outage delivered; want each once", got, n)
	}
	if got := r.Count("probe"); got != probes {
		t.Errorf("%d probes delivered before the outage, %d after it", probes, got)
	}
	// A JetStream consumer reset as its connection comes back may
	// deliver again the events just before the outage whose
	// acknowledgements NATS had not applied: the dedup drops those
	// copies too.
	st := natsStats(t, s2)
	if already := st.DeliveredAlready - before.DeliveredAlready; already != n && !(js && already > n) || st.MissedIn != 0 {
		t.Errorf("delivered_already %d over NATS, missed_in %d; want %d and 0", already, st.MissedIn, n)
	}
	if cut := s2.NetStats().DedupCut; cut != 0 {
		t.Errorf("dedup_cut %d, want 0", cut)
	}
	// The episode is logged as it begins, and as it ends once NATS has
	// caught up, a window later.
	if !strings.Contains(s2.Logs.String(), "NATS is behind multicast") {
		t.Errorf("the receiver's log does not say NATS was behind:\n%s", s2.Logs)
	}
	routertest.WaitFor(t, "the receiver to log that NATS has caught up", func() bool {
		return strings.Contains(s2.Logs.String(), "NATS has caught up with multicast")
	})
}

// TestNATSTurnedOff: a server that a reload takes off NATS, while it
// stays on multicast, says so as its link closes. The other server
// forgets it as a NATS peer at once, and does not take its silence on
// NATS for an outage of its link: NATS is not behind multicast, and the
// dedup's window is not stretched for it.
func TestNATSTurnedOff(t *testing.T) {
	mcasttest.Need(t)
	ns := startNATS(t, 0)
	port := mcasttest.Port()
	both := netMembers(port, "both", fmt.Sprintf(`"nats": {"url": %q},
"channels": {"A": {"propagatetonet": true, "propagatetonats": true, "acceptfromnats": true}}`, ns.ClientURL()))
	s1, s2 := routertest.NewServer(t, both), routertest.NewServer(t, both)
	waitPeers(t, s1, s2)
	waitNATS(t, s1, s2)
	pub := s1.Dial(t, "A")
	r := routertest.Record(t, s2.Dial(t, "A"), "n")
	routertest.WaitFor(t, "the servers to hear each other over NATS", func() bool {
		return len(s1.NATSPeers()) == 1 && len(s2.NATSPeers()) == 1
	})
	// The receiver's watch of the links looks every 250 ms: it has
	// heard the sender over NATS after two looks.
	time.Sleep(600 * time.Millisecond)

	if _, err := s1.Reload(s1.ParseConfig(t, netMembers(port, "both",
		`"channels": {"A": {"propagatetonet": true}}`))); err != nil {
		t.Fatal(err)
	}
	if _, ok := s1.NATSStats(); ok {
		t.Fatal("the reload left the sender a NATS link")
	}
	routertest.WaitFor(t, "the receiver to forget the sender as a NATS peer", func() bool { return len(s2.NATSPeers()) == 0 })
	if n := logCount(s2, "a peer left NATS"); n != 1 {
		t.Errorf("the receiver's log says %d times that a peer left NATS, want 1", n)
	}
	// Over multicast alone, for several peertimeouts (300 ms) and looks.
	const n = 200
	for i := range n {
		if err := pub.Emit("n", i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.WaitCount(t, "n", n)
	if logCount(s2, "NATS is behind multicast") != 0 {
		t.Errorf("the receiver took the sender's leaving NATS for an outage:\n%s", s2.Logs)
	}
	if len(s2.Peers()) != 1 {
		t.Errorf("the receiver lists %d multicast peers, want the sender", len(s2.Peers()))
	}
}

// TestRefusedByOneLinkDeliveredByOther: the receiver's channel accepts
// events from one link only; the sender propagates to both. The copy
// the other link brings is refused, and the accepted one is delivered:
// each event once. Before, the refused copy's id went into the dedup
// first, and the accepted copy, coming after, was dropped as delivered
// already (3 of 50 arrived with NATS only accepted).
func TestRefusedByOneLinkDeliveredByOther(t *testing.T) {
	for _, tc := range []struct{ name, recv string }{
		{"acceptfromnats only", `{"acceptfromnats": true, "acceptfromnet": false}`},
		{"acceptfromnet only", `{"acceptfromnet": true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mcasttest.Need(t)
			ns := startNATS(t, 0)
			port := mcasttest.Port()
			send := netMembers(port, "both", fmt.Sprintf(`"nats": {"url": %q},
"channels": {"A": {"propagatetonet": true, "propagatetonats": true}}`, ns.ClientURL()))
			recv := netMembers(port, "both", fmt.Sprintf(`"nats": {"url": %q},
"channels": {"A": %s}`, ns.ClientURL(), tc.recv))
			s1, s2 := routertest.NewServer(t, send), routertest.NewServer(t, recv)
			waitPeers(t, s1, s2)
			waitNATS(t, s1, s2)
			pub := s1.Dial(t, "A", bus.Name("pub"))
			r := routertest.Record(t, s2.Dial(t, "A", bus.Name("sub")), ".*")
			time.Sleep(500 * time.Millisecond) // subscriptions settle
			const n = 50
			for i := range n {
				if err := pub.Emit("n", i); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			deadline := time.Now().Add(5 * time.Second)
			for r.Count("n") < n && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			st, _ := s2.NATSStats()
			net := s2.NetStats()
			t.Logf("net: delivered %d refused %d already %d; nats: in %d refused %d already %d",
				net.Delivered, net.Refused, net.DeliveredAlready, st.EventsIn, st.Refused, st.DeliveredAlready)
			if got := r.Count("n"); got != n {
				t.Errorf("the receiver got %d of %d events", got, n)
			}
		})
	}
}

// TestNetHoldLeavesNATSFree: while the multicast link waits for a local
// client past its high-water mark, events from NATS are still delivered.
// The wait is bounded (100 ms); the hook makes it last until an event
// sent over NATS meanwhile has reached its subscriber, or 10 s have
// passed. Before, the multicast link held the lock that makes dedup and
// delivery one step through its wait: no event from NATS could be
// delivered until the wait ended.
func TestNetHoldLeavesNATSFree(t *testing.T) {
	mcasttest.Need(t)
	ns := startNATS(t, 0)
	port := mcasttest.Port()
	url := fmt.Sprintf(`"nats": {"url": %q}, `, ns.ClientURL())
	s1 := netServer(t, port, "t", url+`"channels": {"A": {"propagatetonet": true}, "N": {"propagatetonats": true}}`)
	s2 := netServer(t, port, "t", url+`"maxframe": 65536, "maxpending": 262144, "stalltimeout": "1m",
"channels": {"A": {}, "N": {"acceptfromnats": true}}`)
	waitPeers(t, s1, s2)
	waitNATS(t, s1, s2)
	viaNATS := routertest.Record(t, s2.Dial(t, "N"), ".*")
	natsPub := s1.Dial(t, "N")
	probe(t, natsPub, viaNATS)

	delivered := make(chan bool, 1)
	var once sync.Once
	s2.SetNetHoldHook(func() {
		once.Do(func() {
			if err := natsPub.Emit("during", nil); err != nil {
				t.Error(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for viaNATS.Count("during") == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			delivered <- viaNATS.Count("during") > 0
		})
	})
	stall, open := closedGate(t)
	dialStopped(t, s2, stall)
	defer open()
	pub := s1.Dial(t, "A")
	stop, flooded := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(flooded)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if pub.Emit("seq", seqData(i)) != nil {
				return
			}
		}
	}()
	select {
	case ok := <-delivered:
		if !ok {
			t.Error("an event from NATS waited for the multicast link's hold for a client past its mark")
		}
	case <-time.After(60 * time.Second):
		t.Error("the multicast link never held back for the stopped client")
	}
	close(stop)
	pub.Close()
	<-flooded
}
