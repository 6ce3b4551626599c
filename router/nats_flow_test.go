package router_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
	bothFormats(t, func(t *testing.T, pack string) {
		testNATSListenerLosesNothing(t, pack, 20_000, func(sub *counter, cl *bus.Client) {
			sub.listen(t, cl, "seq", 20*time.Microsecond)
		})
	})
}

// TestNATSPausingListenerLosesNothing: a subscriber across NATS that
// stops for 300 ms now and then (longer than the 100 ms a wait for the
// multicast link lasts at most, shorter than stalltimeout) holds the
// NATS subscription that feeds it as it would hold a local publisher,
// and flow control holds the sending server with it: every event
// arrives, in order, and the subscriber is never dropped. With the wait
// bounded at 100 ms, its queue passed maxpending at the first pause.
func TestNATSPausingListenerLosesNothing(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack string) {
		testNATSListenerLosesNothing(t, pack, 10_000, func(sub *counter, cl *bus.Client) {
			if _, err := cl.On("seq", func(m bus.Message) {
				if seqOf(m) != int(sub.got.Load()) {
					sub.outOfOrder.Add(1)
				}
				if sub.got.Add(1)%2000 == 0 {
					time.Sleep(300 * time.Millisecond)
				}
			}); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// testNATSListenerLosesNothing sends n events across NATS to a
// subscriber that listen makes listen to "seq" on a server with small
// queues (the burst passes the marks even with the race detector slowing
// the publisher), and checks that every one arrives, in order, and that
// nothing was dropped on the way.
func testNATSListenerLosesNothing(t *testing.T, pack string, n int, listen func(*counter, *bus.Client)) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := natsNode(t, url, pack)
	s2 := routertest.NewServer(t, natsMembers(url, pack, `"maxframe": 16384, "maxpending": 65536, `+bridged))
	waitNATS(t, s1, s2)
	var sub, pubc counter
	cl := sub.dial(t, s2, "A", bus.QueueLen(64))
	probeRec := routertest.Record(t, cl, "probe")
	listen(&sub, cl)
	pub := pubc.dial(t, s1, "A")
	probe(t, pub, probeRec)
	routertest.WaitFor(t, "the second server's report", func() bool { return natsStats(t, s1).FlowReceivers == 1 })

	emitAll(t, pub, "seq", n)
	sub.wait(t, "the subscriber across NATS", n)
	pubc.check(t, "the publisher", 0)
	if st := stats(t, s2, "A"); st.SlowConsumers != 0 || st.Dropped != 0 {
		t.Errorf("server 2: %d slow consumers, %d frames dropped; want none", st.SlowConsumers, st.Dropped)
	}
	if st := natsStats(t, s2); st.EventsIn < uint64(n) || st.MissedIn != 0 || st.DroppedIn != 0 {
		t.Errorf("server 2 took %d events from NATS (want at least %d), %d missed, %d messages dropped; want none",
			st.EventsIn, n, st.MissedIn, st.DroppedIn)
	}
}

// TestNATSReplyFloodHoldsBack: a flood of replies across NATS to an
// asker that reads slowly holds back the subscription that brings them
// (the asker's server's node subject), as a flood of events holds back
// its channel's, and what NATS sends meanwhile waits in nats.go's
// pending buffer of it: every reply arrives, in order, and the asker is
// never dropped. A reply always goes alone, never in a pack, so one
// format will do.
func TestNATSReplyFloodHoldsBack(t *testing.T) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := routertest.NewServer(t, natsMembers(url, "", `"maxframe": 16384, "maxpending": 65536, `+bridged))
	s2 := natsNode(t, url)
	waitNATS(t, s1, s2)
	replyFlood(t, s1, s2, 5000)
	if st := natsStats(t, s1); st.DroppedIn != 0 || st.Undeliverable != 0 {
		t.Errorf("the asker's server: %d messages dropped from NATS, %d replies undeliverable; want none", st.DroppedIn, st.Undeliverable)
	}
	if st := natsStats(t, s2); st.Dropped != 0 || st.SendFailed != 0 {
		t.Errorf("the responder's server: %d events dropped, %d failed to send; want none", st.Dropped, st.SendFailed)
	}
}

// TestNATSDroppedIn: past a subscription's pending limits (lowered here
// to 64 messages or 128 KiB, which packs reach first) nats.go drops what NATS sends while a stopped local
// subscriber holds the link back. missed_in counts each event lost, in
// either format, once a later one comes: what the server delivered and
// what it counted missed make every event sent. dropped_in counts the
// messages dropped: as many with one event a message, fewer with packs.
// The log says so once (or once every 10 s of a longer stream), though
// nats.go reports it again and again.
// The sender's flow control is off ("flowcontrol": "none"), as it
// would hold the sender back instead (TestNATSFlowControl).
func TestNATSDroppedIn(t *testing.T) { bothFormats(t, testNATSDroppedIn) }

func testNATSDroppedIn(t *testing.T, pack string) {
	b := stuckBridge(t, pack, `"flowcontrol": "none"`)
	start := time.Now()
	sent := b.stream(t)
	st := natsStats(t, b.s2)
	got, missed, dropped := uint64(b.all.Count("seq")), st.MissedIn-b.before.MissedIn, st.DroppedIn-b.before.DroppedIn
	if missed == 0 || got+missed != uint64(sent) {
		t.Errorf("%d events delivered and %d counted missed; want some missed and %d in all", got, missed, sent)
	}
	if pack == "" && dropped != missed || dropped == 0 || dropped > missed {
		t.Errorf("%d messages dropped and %d events missed; want some, and as many without packs", dropped, missed)
	}
	if in := st.EventsIn - b.before.EventsIn; in != got { // the fence went out, not in
		t.Errorf("the link delivered %d events, the subscriber heard %d", in, got)
	}
	// nats.go reports the drops dozens of times in a burst like this
	// one; the log says so once, and at most once every 10 s: again
	// when the stream lasts longer, as it can under the race detector
	// on a loaded machine, the receiver dropping until the burst is
	// over.
	most := 1 + int(time.Since(start)/(10*time.Second))
	if c := logCount(b.s2, "events past the subscription's pending limits are dropped"); c < 1 || c > most {
		t.Errorf("%d log lines about the drops of %d messages; want 1 to %d", c, dropped, most)
	}
	if c := logCount(b.s2, "their sender's numbering skips them"); c < 1 || c > most {
		t.Errorf("%d log lines about the %d events missed; want 1 to %d", c, missed, most)
	}
	// peers shows whose events they were.
	if lost, want := b.lostOf(t), fmt.Sprint(missed); lost != want {
		t.Errorf("peers shows %s lost for server 1, want its %s events missed", lost, want)
	}
}

// TestNATSFlowControl: TestNATSDroppedIn's bridge with the sender's
// flow control on, the default: the receiving server reports what it
// took, and the sender sends no further ahead than the window it
// reports, half of its pending limits. So nothing is dropped nor
// missed: every event arrives, in order, and the publisher was held
// back instead (flow_held). Flow control off, the same stream loses
// (TestNATSDroppedIn).
//
// In "headers, bytes", the pending limits are 16 KiB and a million
// messages: the window comes from the bytes, which nats.go counts with
// the headers, more than the data in that format.
func TestNATSFlowControl(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack string) { testNATSFlowControl(t, pack, 64, 128<<10) })
	t.Run("headers, bytes", func(t *testing.T) { testNATSFlowControl(t, "", 1_000_000, 16<<10) })
}

func testNATSFlowControl(t *testing.T, pack string, pendingMsgs, pendingBytes int) {
	router.SetNATSPendingLimits(t, pendingMsgs, pendingBytes)
	b := stuckBridge(t, pack)
	// The second server reports within 20 ms of the probe; until then
	// nothing holds the sender back.
	routertest.WaitFor(t, "the second server's report", func() bool { return natsStats(t, b.s1).FlowReceivers == 1 })
	sent := b.stream(t)
	st := natsStats(t, b.s2)
	if got, missed, dropped := b.all.Count("seq"), st.MissedIn-b.before.MissedIn, st.DroppedIn-b.before.DroppedIn; got != sent || missed != 0 || dropped != 0 {
		t.Errorf("%d of %d events delivered, %d missed, %d messages dropped; want all, none", got, sent, missed, dropped)
	}
	if seqs := seqsOf(b.all); !slices.IsSorted(seqs) {
		t.Error("the events came out of order")
	}
	sst := natsStats(t, b.s1)
	if sst.FlowHeld == 0 || sst.ReportsIn == 0 || st.ReportsOut == 0 {
		t.Errorf("flow_held %d and reports_in %d at the sender, reports_out %d at the receiver; want all above 0",
			sst.FlowHeld, sst.ReportsIn, st.ReportsOut)
	}
	if sst.FlowReceivers != 1 || sst.FlowExcluded != 0 {
		t.Errorf("flow_receivers %d, flow_excluded %d; want 1 and 0", sst.FlowReceivers, sst.FlowExcluded)
	}
	if lost := b.lostOf(t); lost != "0" {
		t.Errorf("peers shows %s lost for server 1, want 0", lost)
	}
}

// TestNATSFlowControlSenders: three servers stream into one whose
// pending limits are 64 messages, behind a stopped reader: the receiver
// shares its window among the senders, so that together they keep no
// more in flight than it can hold, and nothing is lost. Each given the
// whole window (half the limits), the three would overrun it.
//
// The senders take nothing from NATS (sendOnly): they report to nobody,
// and their clients get nothing of the others' streams.
func TestNATSFlowControlSenders(t *testing.T) {
	b := stuckBridgeOf(t, sendOnly, "")
	senders, pubs := []*routertest.Server{b.s1}, []*bus.Client{b.pub}
	for range 2 {
		ts := patientServer(t, b.url, sendOnly)
		waitNATS(t, ts)
		pub := ts.Dial(t, "A")
		probes := b.all.Count("probe")
		routertest.WaitFor(t, "a probe from another sender", func() bool {
			if err := pub.Emit("probe", nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			return b.all.Count("probe") > probes
		})
		routertest.WaitFor(t, "the receiver's report", func() bool { return natsStats(t, ts).FlowReceivers >= 1 })
		senders, pubs = append(senders, ts), append(pubs, pub)
	}
	b.waitShares(t, senders, pubs)
	const n = 10_000
	errs := make(chan error, len(pubs))
	for _, pub := range pubs {
		go func() {
			for i := range n {
				if err := pub.Emit("seq", seqData(i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range pubs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := len(pubs) * n
	// Flow control paces the three to the receiver: under the race
	// detector that takes about as long as WaitFor's 10 s, so the wait
	// goes on while events keep coming.
	accounted := func() uint64 {
		return uint64(b.all.Count("seq")) + natsStats(t, b.s2).MissedIn - b.before.MissedIn
	}
	if !routertest.WaitProgress(func() bool { return accounted() >= uint64(want) }, accounted) {
		t.Fatalf("%d of %d events delivered or counted missed, and none more for 10 s (%d messages dropped)",
			accounted(), want, natsStats(t, b.s2).DroppedIn-b.before.DroppedIn)
	}
	routertest.Fence(t, b.s2, "A", b.all)
	st := natsStats(t, b.s2)
	if got, missed, dropped := b.all.Count("seq"), st.MissedIn-b.before.MissedIn, st.DroppedIn-b.before.DroppedIn; got != want || missed != 0 || dropped != 0 {
		t.Errorf("%d of %d events delivered, %d missed, %d messages dropped; want all, none", got, want, missed, dropped)
	}
}

// waitShares waits until each of the senders, whose clients are pubs,
// has taken three reports from the receiver since the receiver last
// delivered an event of every one of them: by then each sender holds a
// report made while the receiver heard them all, with its share of the
// window. A report on its way when the last event was delivered was
// made before, maybe with a larger share; three make that one out of
// the way. Waiting a fixed time instead, a loaded machine delayed a
// report past it, and a sender went on with the whole window. The
// senders take nothing from NATS (sendOnly), so what they count in
// reports_in is the receiver's alone.
func (b *bridge) waitShares(t *testing.T, senders []*routertest.Server, pubs []*bus.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		probes := b.all.Count("probe")
		for _, pub := range pubs {
			if err := pub.Emit("probe", nil); err != nil {
				t.Fatal(err)
			}
		}
		routertest.WaitFor(t, "a probe of every sender", func() bool { return b.all.Count("probe") >= probes+len(pubs) })
		before := make([]uint64, len(senders))
		for i, s := range senders {
			before[i] = natsStats(t, s).ReportsIn
		}
		// A second at most, well within the receiver's peertimeout
		// (2 s), past which it forgets a sender that sent nothing and
		// reports to it no more: then the senders send again.
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if !slices.ContainsFunc(senders, func(s *routertest.Server) bool {
				return natsStats(t, s).ReportsIn < before[slices.Index(senders, s)]+3
			}) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for three reports of the receiver at every sender")
		}
	}
}

// bridge is two servers joined through NATS, whose second one's
// subscriptions of events hold 64 messages or 128 KiB at most (packs
// reach the bytes first; unless the test set other limits), and a
// client of it that stops at the first "seq" event, and so holds the
// link back (HoldBackStall) until it is dropped for taking nothing for
// stalltimeout.
type bridge struct {
	url    string // the NATS server's
	s1, s2 *routertest.Server
	pub    *bus.Client
	all    *routertest.Recorder // every event the second server's channel A delivers
	ctl    *bus.Client
	before router.NATSStats // the second server's, before the stream
}

// stuckBridge starts a bridge; extra are more members of the sender's
// nats object, with pack.
func stuckBridge(t *testing.T, pack string, extra ...string) *bridge {
	return stuckBridgeOf(t, bridged, pack, extra...)
}

// sendOnly are the channels of a server that sends A's events to NATS
// and takes none from it.
const sendOnly = `"channels": {"A": {"propagatetonats": true}}`

// stuckBridgeOf is stuckBridge whose sender has channels.
func stuckBridgeOf(t *testing.T, channels, pack string, extra ...string) *bridge {
	limits := "" // as the test set them (SetNATSPendingLimits)
	if m, _ := router.NATSPendingLimits(); m == 0 {
		// The receiving server's, as a user sets them: the lowest the
		// configuration takes.
		limits = `"pendingmsgs": 64, "pendingbytes": 131072`
	}
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	b := &bridge{url: url, s1: patientServer(t, url, channels, append([]string{pack}, extra...)...)}
	// The stopped reader is dropped after stalltimeout, well within the
	// sender's peertimeout (5 s): the sender never leaves it out meanwhile.
	b.s2 = routertest.NewServer(t, natsMembers(url, limits, `"maxframe": 16384, "maxpending": 65536, "stalltimeout": "500ms", `+bridged))
	waitNATS(t, b.s1, b.s2)
	b.all = routertest.Record(t, b.s2.Dial(t, "A"), ".*")
	stuck := b.s2.Dial(t, "A", bus.QueueLen(16))
	release := make(chan struct{})
	if _, err := stuck.On("seq", func(bus.Message) { <-release }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) }) // before the client closes
	b.pub = b.s1.Dial(t, "A")
	probe(t, b.pub, b.all)
	b.ctl = b.s2.Dial(t, "control")
	routertest.WaitFor(t, "server 1 among the peers of server 2", func() bool { return b.lostOf(t) == "0" })
	b.before = natsStats(t, b.s2)
	return b
}

// patientSender is natsNode with peertimeout 5 s instead of 2: the time
// without progress after which it leaves a receiving server out of flow
// control. A loaded machine, under the race detector, once took more
// than 2 s to drop the stopped reader (stalltimeout 500 ms) and deliver
// again; the sender then left the receiver out, and events were lost.
func patientSender(t testing.TB, url string, extra ...string) *routertest.Server {
	t.Helper()
	return patientServer(t, url, bridged, extra...)
}

// patientServer is patientSender with channels.
func patientServer(t testing.TB, url, channels string, extra ...string) *routertest.Server {
	t.Helper()
	extra = slices.DeleteFunc(extra, func(s string) bool { return s == "" })
	cfg := natsMembers(url, strings.Join(extra, ", "), channels)
	patient := strings.Replace(cfg, `"peertimeout": "2s"`, `"peertimeout": "5s"`, 1)
	if patient == cfg {
		t.Fatal("natsMembers sets no peertimeout of 2 s to replace")
	}
	return routertest.NewServer(t, patient)
}

// lostOf is what peers at the second server shows lost for the first.
func (b *bridge) lostOf(t testing.TB) string {
	ans := routertest.Control(t, b.ctl, "peers", nil)
	peers, _ := ans["peers"].([]any)
	for _, p := range peers {
		if p, _ := p.(map[string]any); p["node"] == b.s1.Node().String() && p["addr"] == "nats" {
			return fmt.Sprint(p["lost"])
		}
	}
	return "no such peer"
}

// stream emits 20,000 "seq" events, and then one more at a time until
// every one is delivered or counted missed: what was skipped shows at
// the next event that comes. It returns how many it emitted, once the
// second server delivered all it will.
//
// Under the race detector on a loaded machine the second server can
// still be taking the burst 10 s after the last of it was emitted, so
// the wait goes on for as long as the shortfall (emitted, less
// delivered or counted missed) keeps shrinking to a new low. Events lost
// and never counted leave a shortfall that each emitted event only
// carries along: that low stands still, and the wait fails after 10 s.
func (b *bridge) stream(t *testing.T) int {
	const n = 20_000
	emitAll(t, b.pub, "seq", n)
	sent := n
	least := uint64(n) // the smallest shortfall seen
	accounted := func() uint64 {
		return uint64(b.all.Count("seq")) + natsStats(t, b.s2).MissedIn - b.before.MissedIn
	}
	if !routertest.WaitProgress(func() bool {
		if err := b.pub.Emit("seq", seqData(sent)); err != nil {
			t.Fatal(err)
		}
		sent++
		time.Sleep(5 * time.Millisecond)
		got := accounted()
		if got >= uint64(sent) {
			return true
		}
		least = min(least, uint64(sent)-got)
		return false
	}, func() uint64 { return least }) {
		t.Fatalf("%d of %d events delivered or counted missed, and the shortfall no lower for 10 s", accounted(), sent)
	}
	routertest.Fence(t, b.s2, "A", b.all)
	return sent
}

// seqsOf are the sequence numbers of the seqData events r heard, in
// order.
func seqsOf(r *routertest.Recorder) []int {
	var out []int
	for _, m := range r.Messages() {
		if m.Event == "seq" {
			out = append(out, seqOf(m))
		}
	}
	return out
}

// TestNATSJetStreamDrainAtShutdown: a server that shuts down while its
// JetStream consumer holds events it took but has not delivered yet (a
// slow subscriber holds the link back) delivers them first, and
// acknowledges them: the next server of the same durable gets the rest,
// at once and in order, and nothing is lost or doubled. Before, they
// were dropped at shutdown and came to the next one only after the
// consumer's ack wait (30 s), behind newer ones.
func TestNATSJetStreamDrainAtShutdown(t *testing.T) {
	ns := startJetStream(t)
	url := ns.ClientURL()
	js := func(durable, more string) string {
		return natsMembers(url, fmt.Sprintf(`"jetstream": true, "durable": %q, "catchup": "300ms"`, durable), more+bridged)
	}
	s1 := routertest.NewServer(t, js("one", ""))
	pub := s1.Dial(t, "A")
	clients := ns.NumClients()
	s2 := routertest.NewServer(t, js("two", `"maxframe": 16384, "maxpending": 65536, `))
	rec2 := routertest.Record(t, s2.Dial(t, "A"), ".*")
	var slow counter
	slow.listen(t, slow.dial(t, s2, "A", bus.QueueLen(64)), "seq", 100*time.Microsecond)
	probe(t, pub, rec2)

	// Past what the slow subscriber's socket and queue take, s2's link
	// is held back, with the events its consumer took waiting.
	const n = 20_000
	emitAll(t, pub, "seq", n)
	rec2.WaitCount(t, "seq", 3000)
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "nats-server to drop s2's connection", func() bool { return ns.NumClients() == clients })
	if c := logCount(s2, "did not drain in time"); c != 0 {
		t.Error("server 2's consumer did not drain within its bound")
	}
	got2 := seqsOf(rec2)
	if len(got2) >= n {
		t.Fatalf("server 2 delivered all %d events before it shut down: the test proves nothing", len(got2))
	}
	s3 := routertest.NewServer(t, js("two", "")) // s2 again: the same consumer
	rec3 := routertest.Record(t, s3.Dial(t, "A"), ".*")
	rec3.WaitCount(t, "seq", n-len(got2))
	routertest.Fence(t, s3, "A", rec3)
	got3 := seqsOf(rec3)
	for i, v := range append(got2, got3...) {
		if v != i {
			t.Fatalf("event %d of the two servers is %d: lost, doubled or out of order (server 2 delivered %d, server 3 %d; %d is at %d of server 3's)",
				i, v, len(got2), len(got3), i, slices.Index(got3, i))
		}
	}
	if len(got2)+len(got3) != n {
		t.Errorf("server 2 delivered %d events, server 3 %d; want %d in all", len(got2), len(got3), n)
	}
}
