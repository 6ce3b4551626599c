package router_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/natslink"
	"github.com/netcluster/netcluster/router/routertest"
	"github.com/vmihailenco/msgpack/v5"
)

// TestNATSBridge: three servers without multicast, joined through one
// NATS server. What a client emits on a bridged channel reaches the
// clients of that channel on every other server, and its propagation
// targets there, each event once and in order, both ways; its own
// server delivers it once; a server never sends on what came from NATS;
// a channel that does not accept from NATS hears nothing.
func TestNATSBridge(t *testing.T) { bothFormats(t, testNATSBridge) }

func testNATSBridge(t *testing.T, pack string) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1, s2, s3 := natsNode(t, url, pack), natsNode(t, url, pack), natsNode(t, url, pack)
	deaf := routertest.NewServer(t, natsMembers(url, pack, `"channels": {"A": {"propagatetonats": true}}`))
	waitNATS(t, s1, s2, s3, deaf)

	var rec [4]*routertest.Recorder
	for i, ts := range []*routertest.Server{s1, s2, s3, deaf} {
		rec[i] = routertest.Record(t, ts.Dial(t, "A", bus.Name("listener")), ".*")
	}
	onB := routertest.Record(t, s2.Dial(t, "B", bus.Name("on B")), ".*")
	pub1, pub2 := s1.Dial(t, "A", bus.Name("pub1")), s2.Dial(t, "A", bus.Name("pub2"))

	const n = 300
	for i := range n {
		if err := pub1.Emit("one", i); err != nil {
			t.Fatal(err)
		}
		if err := pub2.Emit("two", i); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range rec[:3] {
		r.WaitCount(t, "one", n)
		r.WaitCount(t, "two", n)
		routertest.Fence(t, []*routertest.Server{s1, s2, s3}[i], "A", r)
		checkSeq(t, fmt.Sprintf("server %d, from server 1", i+1), dataOf(t, r, "one"), n)
		checkSeq(t, fmt.Sprintf("server %d, from server 2", i+1), dataOf(t, r, "two"), n)
	}
	onB.WaitCount(t, "one", n)
	routertest.Fence(t, s2, "B", onB)
	checkSeq(t, "B of server 2, propagated from A", dataOf(t, onB, "one"), n)

	// Each fence emitted on A went out too.
	for i, ts := range []*routertest.Server{s1, s2} {
		if st := natsStats(t, ts); st.EventsOut != n+1 {
			t.Errorf("server %d sent %d events to NATS, want %d and its fence: only what entered there goes out", i+1, st.EventsOut, n)
		}
	}
	routertest.Fence(t, deaf, "A", rec[3])
	if got := len(rec[3].Events()); got != 1 {
		t.Errorf("a channel without acceptfromnats heard %d events from NATS: %v", got-1, rec[3].Events())
	}
	routertest.WaitFor(t, "server 3 to receive the events and 3 fences", func() bool { return natsStats(t, s3).EventsIn >= 2*n+3 })
	if st := natsStats(t, s3); st.EventsOut != 1 || st.EventsIn != 2*n+3 {
		t.Errorf("server 3: %d events out, %d in; want its fence alone out (nothing from NATS goes back) and %d in", st.EventsOut, st.EventsIn, 2*n+3)
	}
}

// TestNATSPlainClient: a plain nats.go program listens to a channel and
// emits into one, with the documented subject, headers and msgpack body.
func TestNATSPlainClient(t *testing.T) {
	ns := startNATS(t, 0)
	ts := natsNode(t, ns.ClientURL())
	nc := plainNATS(t, ns.ClientURL())
	sub, err := nc.SubscribeSync("netcluster.default.A")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	t.Run("listen", func(t *testing.T) {
		pub := ts.Dial(t, "A")
		if err := pub.Emit("hello", map[string]any{"n": 7}); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var data map[string]int
		if err := msgpack.Unmarshal(m.Data, &data); err != nil || data["n"] != 7 {
			t.Errorf("body %x: %v, %v; want the msgpack of {n: 7}", m.Data, data, err)
		}
		h := m.Header
		if h.Get(natslink.HeaderEvent) != "hello" || h.Get(natslink.HeaderOrigin) != ts.Node().String() ||
			h.Get(natslink.HeaderSender) != pub.ID().String() || h.Get(natslink.HeaderID) == "" {
			t.Errorf("headers %v", h)
		}
	})
	t.Run("emit", func(t *testing.T) {
		r := routertest.Record(t, ts.Dial(t, "A"), ".*")
		send := func(event string, data []byte, h ...string) {
			m := nats.NewMsg("netcluster.default.A")
			if event != "" {
				m.Header.Set(natslink.HeaderEvent, event)
			}
			for i := 0; i+1 < len(h); i += 2 {
				m.Header.Set(h[i], h[i+1])
			}
			m.Data = data
			if err := nc.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		body, _ := msgpack.Marshal("from nats")
		send("", body)            // no event name: dropped
		send("bad", []byte{0xc1}) // not msgpack: dropped
		send("greeting", body)    // fine
		// The zero id and sender are missing ones, made up: the second
		// event is not a copy of the first.
		zero := uuid.Nil.String()
		for range 2 {
			send("zeroed", body, natslink.HeaderID, zero, natslink.HeaderSender, zero)
		}
		r.WaitCount(t, "greeting", 1)
		r.WaitCount(t, "zeroed", 2)
		var got string
		if err := r.Messages()[0].Decode(&got); err != nil || got != "from nats" {
			t.Errorf("data %q, %v", got, err)
		}
		for _, m := range r.Messages() {
			if m.ID == uuid.Nil || m.Sender == uuid.Nil {
				t.Errorf("%s: id %v, sender %v; want ids made up", m.Event, m.ID, m.Sender)
			}
		}
		routertest.Fence(t, ts, "A", r)
		if evs := r.Events(); len(evs) != 4 {
			t.Errorf("heard %v; want greeting, zeroed twice and the fence alone", evs)
		}
		st := natsStats(t, ts)
		if st.Malformed != 1 || st.Invalid != 1 {
			t.Errorf("malformed %d, invalid %d; want 1 and 1", st.Malformed, st.Invalid)
		}
	})
}

// TestNATSInvalidCopyHidesNothing: an event from NATS that the server
// drops as invalid is not remembered as delivered, so that a valid
// event with the same id, which may be the other link's copy, is
// delivered all the same; an invalid reply neither hides a valid one.
func TestNATSInvalidCopyHidesNothing(t *testing.T) {
	ns := startNATS(t, 0)
	ts := natsNode(t, ns.ClientURL())
	nc := plainNATS(t, ns.ClientURL())
	send := func(subject, event string, id uuid.UUID, h ...string) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Header.Set(natslink.HeaderEvent, event)
		m.Header.Set(natslink.HeaderID, id.String())
		for i := 0; i+1 < len(h); i += 2 {
			m.Header.Set(h[i], h[i+1])
		}
		m.Data, _ = msgpack.Marshal("x")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	tooLong := strings.Repeat("n", wire.MaxEventName+1)

	r := routertest.Record(t, ts.Dial(t, "A"), "good")
	id := uuid.New()
	send("netcluster.default.A", tooLong, id)
	send("netcluster.default.A", "good", id)
	r.WaitCount(t, "good", 1)

	// A reply: the asker's server takes replies to clients that sent
	// to NATS from it, over its node subject.
	// Its listener is declared before its event, on the same connection:
	// the server knows it listens once the event has gone out.
	asker := ts.Dial(t, "A")
	got := make(chan string, 2)
	if _, err := asker.On("answer", func(m bus.Message) { got <- m.Event }); err != nil {
		t.Fatal(err)
	}
	if err := asker.Emit("hello", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the asker's event to go out", func() bool { return natsStats(t, ts).EventsOut >= 1 })
	node := natslink.NodeSubject("netcluster", "default", ts.Node())
	rid := uuid.New()
	reply := []string{natslink.HeaderTo, asker.ID().String(), natslink.HeaderRe, uuid.NewString(), natslink.HeaderChannel, "A"}
	send(node, tooLong, rid, reply...)
	send(node, "answer", rid, reply...)
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the valid reply never came: the invalid one with its id hid it")
	}
	if st := natsStats(t, ts); st.Invalid != 2 || st.DeliveredAlready != 0 {
		t.Errorf("invalid %d, delivered already %d; want 2 and 0", st.Invalid, st.DeliveredAlready)
	}
}

// TestNATSRequestReply: a request answered on another server gets its
// reply, over the asker's node subject: no other client hears it, and
// no other server receives it.
func TestNATSRequestReply(t *testing.T) { bothFormats(t, testNATSRequestReply) }

func testNATSRequestReply(t *testing.T, pack string) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1, s2, s3 := natsNode(t, url, pack), natsNode(t, url, pack), natsNode(t, url, pack)
	waitNATS(t, s1, s2, s3)
	const n = 5
	for i, r := range askAcross(t, []*routertest.Server{s1, s2, s3}, n) {
		if c := r.Count("get"); c != n {
			t.Errorf("a bystander on server %d heard %d requests, want %d", i+1, c, n)
		}
	}
	// Server 3 received the requests and the fences of servers 1 and 2,
	// server 1 the replies and the fences of servers 2 and 3.
	for i, ts := range []*routertest.Server{s1, s3} {
		routertest.WaitFor(t, "the fences", func() bool { return natsStats(t, ts).EventsIn >= n+2 })
		if got := natsStats(t, ts).EventsIn; got != n+2 {
			t.Errorf("server %d received %d events from NATS, want %d", 2*i+1, got, n+2)
		}
	}
}

// TestNATSAbsentAtStart: with no NATS server yet, ncservers start, say
// so, serve their clients, and bridge once NATS appears.
func TestNATSAbsentAtStart(t *testing.T) {
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	s1, s2 := natsNode(t, url), natsNode(t, url)
	if logCount(s1, "NATS is not reachable yet") != 1 {
		t.Errorf("the server did not log that NATS is unreachable:\n%s", s1.Logs)
	}
	pub := s1.Dial(t, "A")
	local := routertest.Record(t, s1.Dial(t, "A"), ".*")
	if err := pub.Emit("local", nil); err != nil {
		t.Fatal(err)
	}
	local.WaitCount(t, "local", 1)

	startNATS(t, port)
	r := routertest.Record(t, s2.Dial(t, "A"), ".*")
	waitNATS(t, s1, s2)
	probe(t, pub, r)
}

// TestNATSRestart: NATS goes away and comes back; local clients stay
// connected throughout, the links reconnect, the bridge works again, and
// what was sent meanwhile arrives, in order.
func TestNATSRestart(t *testing.T) {
	ns := startNATS(t, 0)
	port := natsPort(ns)
	s1, s2 := natsNode(t, ns.ClientURL()), natsNode(t, ns.ClientURL())
	var drops atomic.Int32
	pub := s1.Dial(t, "A", bus.OnDisconnect(func(error) { drops.Add(1) }))
	r := routertest.Record(t, s2.Dial(t, "A", bus.OnDisconnect(func(error) { drops.Add(1) })), ".*")
	probe(t, pub, r)

	stopNATS(ns)
	routertest.WaitFor(t, "the links to notice", func() bool {
		return !natsStats(t, s1).Connected && !natsStats(t, s2).Connected
	})
	for i := range 10 {
		if err := pub.Emit("while-down", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the events to wait in the buffer", func() bool { return natsStats(t, s1).Buffered > 0 })

	startNATS(t, port)
	waitNATS(t, s1, s2)
	r2 := routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, r2)
	if st := natsStats(t, s1); st.Reconnects < 1 || st.Dropped != 0 {
		t.Errorf("reconnects %d, dropped %d; want at least 1 and 0", st.Reconnects, st.Dropped)
	}
	if n := drops.Load(); n != 0 {
		t.Errorf("local clients were disconnected %d times", n)
	}
	// The events of the outage reach s2, in order: s1 kept them until it
	// heard s2 again, so after s2 had subscribed again. Sent at once,
	// as nats.go does with its own buffer, they were lost in most runs.
	checkSeq(t, "the events sent during the outage", dataOf(t, r, "while-down"), 10)
	if missed := natsStats(t, s2).MissedIn; missed != 0 {
		t.Errorf("server 2 counted %d events missed", missed)
	}
}

// TestNATSBufferFull: while NATS is down, what does not fit the buffer
// is dropped, counted, and logged once per outage.
func TestNATSBufferFull(t *testing.T) {
	ns := startNATS(t, 0)
	ts := routertest.NewServer(t, natsMembers(ns.ClientURL(), `"buffer": 2048`, bridged))
	waitNATS(t, ts)
	stopNATS(ns)
	routertest.WaitFor(t, "the link to notice", func() bool { return !natsStats(t, ts).Connected })
	pub := ts.Dial(t, "A")
	local := routertest.Record(t, ts.Dial(t, "A"), ".*")
	blob := make([]byte, 200)
	for i := range 100 {
		if err := pub.Emit("blob", blob); err != nil {
			t.Fatal(i, err)
		}
	}
	local.WaitCount(t, "blob", 100) // local delivery goes on
	// What fits waits in the buffer, not yet sent; the rest is dropped.
	// Buffered counts nats.go's own buffer too, which may hold a
	// heartbeat (under 512 bytes) written as NATS went.
	st := natsStats(t, ts)
	if st.Dropped < 100-2048/200 || st.Dropped == 100 || st.EventsOut != 0 || st.Buffered == 0 || st.Buffered > 2048+512 {
		t.Errorf("dropped %d, sent %d, %d bytes buffered, of 100 events of 200 bytes with a buffer of 2048 bytes",
			st.Dropped, st.EventsOut, st.Buffered)
	}
	if c := logCount(ts, "the buffer for NATS is full"); c != 1 {
		t.Errorf("%d log lines about the full buffer, want 1", c)
	}
}

// TestNATSPeersAndStats: servers heard over NATS are peers, and stats
// shows the link's counters.
func TestNATSPeersAndStats(t *testing.T) {
	ns := startNATS(t, 0)
	s1, s2 := natsNode(t, ns.ClientURL()), natsNode(t, ns.ClientURL())
	ctl := s1.Dial(t, "control")
	routertest.WaitFor(t, "server 2 among the peers of server 1", func() bool {
		ans := routertest.Control(t, ctl, "peers", nil)
		peers, _ := ans["peers"].([]any)
		for _, p := range peers {
			if p, _ := p.(map[string]any); p["node"] == s2.Node().String() && p["addr"] == "nats" {
				return ans["nats"] == true
			}
		}
		return false
	})
	if err := s1.Dial(t, "A").Emit("x", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "stats to count the event", func() bool {
		ans := routertest.Control(t, ctl, "stats", nil)
		st, _ := ans["nats"].(map[string]any)
		return fmt.Sprint(st["events_out"]) == "1" && st["connected"] == true
	})
}

// TestNATSMetrics: the metrics endpoint exports the NATS counters while
// there is a link, and the secrets never appear in stats or the log.
func TestNATSMetrics(t *testing.T) {
	ns := startNATS(t, 0, func(o *server.Options) { o.Username, o.Password = "nc", "hunter2" })
	ts := routertest.NewServer(t, natsMembers(ns.ClientURL(), `"user": "nc", "password": "hunter2"`, bridged)+`, "metrics": "127.0.0.1:0"`)
	waitNATS(t, ts)
	if err := ts.Dial(t, "A").Emit("x", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the event to go out", func() bool { return natsStats(t, ts).EventsOut == 1 })
	body := scrape(t, ts, "/metrics")
	for _, want := range []string{"netcluster_nats_connected 1", "netcluster_nats_events_out_total 1", "netcluster_nats_dropped_total 0"} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	ctl := ts.Dial(t, "control")
	for _, cmd := range []string{"stats", "showconfig", "peers"} {
		if ans := fmt.Sprint(routertest.Control(t, ctl, cmd, nil)); strings.Contains(ans, "hunter2") {
			t.Errorf("%s shows the password: %s", cmd, ans)
		}
	}
	if strings.Contains(ts.Logs.String(), "hunter2") {
		t.Error("the log shows the password")
	}
}

// TestNATSJetStreamCatchUp: with JetStream, a server that was down gets,
// on start, what its channels missed, in order and once, and then the
// live events; its clients, back by then, hear them.
func TestNATSJetStreamCatchUp(t *testing.T) { bothFormats(t, testNATSJetStreamCatchUp) }

func testNATSJetStreamCatchUp(t *testing.T, pack string) {
	ns := startJetStream(t)
	url := ns.ClientURL()
	js := func(durable string) string { return jsMembers(url, durable, "300ms", pack) }
	s1 := routertest.NewServer(t, js("one"))
	pub := s1.Dial(t, "A")
	clients := ns.NumClients()
	s2 := routertest.NewServer(t, js("two"))
	r := routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, r)
	for i := range 5 {
		if err := pub.Emit("before", i); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitCount(t, "before", 5)
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Until nats-server has seen s2's connection close, it may hand the
	// next events to s2's last pull request, where they would wait out
	// the consumer's ack wait before coming to s3.
	routertest.WaitFor(t, "nats-server to drop s2's connection", func() bool { return ns.NumClients() == clients })

	const n = 20
	for i := range n {
		if err := pub.Emit("missed", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the stream to hold them", func() bool { return natsStats(t, s1).EventsOut >= n+6 })
	s3 := routertest.NewServer(t, js("two")) // s2 again: a new node id, the same consumer
	r3 := routertest.Record(t, s3.Dial(t, "A"), ".*")
	r3.WaitCount(t, "missed", n)
	if err := pub.Emit("after", 0); err != nil {
		t.Fatal(err)
	}
	r3.WaitCount(t, "after", 1)
	routertest.Fence(t, s3, "A", r3)
	checkSeq(t, "caught up", dataOf(t, r3, "missed"), n)
	if c := r3.Count("before") + r3.Count("probe"); c != 0 {
		t.Errorf("the restarted server delivered %d events it had delivered before", c)
	}
	if c := r3.Count("after"); c != 1 {
		t.Errorf("the live event after the catch-up came %d times", c)
	}
}

// TestNATSForgedReply: a reply from NATS that answers no request sent
// from this server reaches no one, even addressed to a real client.
func TestNATSForgedReply(t *testing.T) {
	ns := startNATS(t, 0)
	ts := natsNode(t, ns.ClientURL())
	victim := ts.Dial(t, "A")
	r := routertest.Record(t, victim, ".*")
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := nats.NewMsg(natslink.NodeSubject("netcluster", "", ts.Node()))
	m.Header.Set(natslink.HeaderEvent, "forged")
	m.Header.Set(natslink.HeaderTo, victim.ID().String())
	m.Header.Set(natslink.HeaderRe, uuid.NewString())
	m.Header.Set(natslink.HeaderChannel, "A")
	m.Data = []byte{0xc0}
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	routertest.WaitFor(t, "the reply to be dropped", func() bool { return natsStats(t, ts).Malformed+natsStats(t, ts).Invalid == 1 })
	routertest.Fence(t, ts, "A", r)
	if c := r.Count("forged"); c != 0 {
		t.Errorf("the forged reply was delivered %d times", c)
	}
}

// TestNATSRestartWhileStreaming: a client streams as fast as it can
// while NATS goes away and comes back. Every event is accounted for,
// once: delivered to the other server in order, or counted where it
// was lost, as dropped by the sender (its buffer full while NATS was
// away) or missed by the receiver (in flight when NATS went, a gap in
// the numbering), and the counts add up to what was sent.
func TestNATSRestartWhileStreaming(t *testing.T) {
	ns := startNATS(t, 0)
	port := natsPort(ns)
	s1 := routertest.NewServer(t, natsMembers(ns.ClientURL(), `"buffer": 65536`, bridged))
	s2 := natsNode(t, ns.ClientURL())
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), "seq|last")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))

	stream := streamSeq(pub)
	stream.flow(t, 2000)
	stopNATS(ns)
	routertest.WaitFor(t, "the links to notice", func() bool {
		return !natsStats(t, s1).Connected && !natsStats(t, s2).Connected
	})
	stream.flow(t, 2000)
	// Until NATS is back, s1 drops what does not fit its buffer; once
	// it is back, the publisher waits for room instead. So the buffer
	// must overflow before then, or nothing is dropped.
	routertest.WaitFor(t, "s1's buffer to overflow", func() bool { return natsStats(t, s1).Dropped > 0 })
	startNATS(t, port)
	waitNATS(t, s1, s2)
	stream.flow(t, 2000)
	n := stream.end(t)
	// One more event once s1 sends directly again (a probe might be
	// dropped, and counted, while s1 still waits to hear s2): it shows
	// what went missing before it, and far has all the rest when it
	// has it.
	waitSent(t, s1)
	if err := pub.Emit("last", nil); err != nil {
		t.Fatal(err)
	}
	far.WaitCount(t, "last", 1)
	got := dataOf(t, far, "seq")
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("event %d after %d: out of order or doubled", got[i], got[i-1])
		}
	}
	dropped, missed := natsStats(t, s1).Dropped, natsStats(t, s2).MissedIn
	t.Logf("%d events sent: %d delivered, %d dropped by the sender, %d missed by the receiver", n, len(got), dropped, missed)
	if uint64(len(got))+dropped+missed != uint64(n) {
		t.Errorf("%d events sent: %d delivered, %d dropped by the sender, %d missed by the receiver; they do not add up",
			n, len(got), dropped, missed)
	}
	if dropped == 0 {
		t.Error("nothing was dropped: the buffer never filled, and the test proves less than it says")
	}
	// An event whose write failed as NATS went is kept, not failed.
	if n := natsStats(t, s1).SendFailed; n != 0 {
		t.Errorf("%d events failed to send", n)
	}
}

// TestNATSReplyUnderLoad: through NATS, a reply reaches its asker however
// many events the servers exchanged between the request and the reply.
func TestNATSReplyUnderLoad(t *testing.T) { bothFormats(t, testNATSReplyUnderLoad) }

func testNATSReplyUnderLoad(t *testing.T, pack string) {
	ns := startNATS(t, 0)
	s1, s2 := natsNode(t, ns.ClientURL(), pack), natsNode(t, ns.ClientURL(), pack)
	waitNATS(t, s1, s2)
	replyUnderLoad(t, s1, s2, func() uint64 { return natsStats(t, s2).EventsIn })
}

// TestNATSJetStreamCountsLoss: a stream too small for a burst drops its
// oldest events before the receiving server's consumer takes them. The
// receiver counts each event lost so (missed_in), from the numbering of
// the events it is delivered for the first time: every event is
// delivered, in order, or counted.
func TestNATSJetStreamCountsLoss(t *testing.T) { bothFormats(t, testNATSJetStreamCountsLoss) }

func testNATSJetStreamCountsLoss(t *testing.T, pack string) {
	ns := startJetStream(t)
	// A few messages: events, or packs of up to 64 KiB.
	maxBytes := 4096
	if pack != "" {
		maxBytes = 128 << 10
	}
	js := func(durable string) string {
		extra := fmt.Sprintf(`"jetstream": true, "durable": %q, "catchup": "300ms", "maxbytes": %d`, durable, maxBytes)
		if pack != "" {
			extra += ", " + pack
		}
		return natsMembers(ns.ClientURL(), extra, bridged)
	}
	s1 := routertest.NewServer(t, js("one"))
	s2 := routertest.NewServer(t, js("two"))
	pub := s1.Dial(t, "A")
	r := routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, r)
	// The burst loses events only while the consumer lags more than the
	// stream holds behind the publisher. On a loaded machine a packed
	// burst can go at the consumer's pace and lose nothing: up to five
	// bursts, numbered on from one to the next.
	// The last events stay in the stream: the consumer gets them.
	got, sent := burstsUntil(t, pub, r, 50000, func(got []int, sent int) bool { return len(got) < sent },
		fmt.Sprintf("the stream of %d bytes held every event", maxBytes))
	missed := natsStats(t, s2).MissedIn
	t.Logf("%d of %d events delivered, %d counted missed", len(got), sent, missed)
	if uint64(sent-len(got)) != missed {
		t.Errorf("%d events lost, %d counted missed", sent-len(got), missed)
	}
}

// TestNATSJetStreamBurst: a NATS server takes a stream's messages into
// a queue of bounded length and drops those past it. An unpaced burst of
// single events, published without acknowledgement, lost most of them
// there; published with it, at most a window of them unacknowledged, the
// publisher waits for the stream instead, and every event is delivered,
// in order.
func TestNATSJetStreamBurst(t *testing.T) {
	s1, s2, pub, r := jetStreamIngest(t, queueOf(1000), "") // above the window
	const n = 20000
	burst(t, pub, n)
	got := increasingUpTo(t, r, "n", n-1)
	st1, st2 := natsStats(t, s1), natsStats(t, s2)
	if len(got) != n || st1.Dropped != 0 || st2.MissedIn != 0 {
		t.Errorf("%d of %d events delivered; %d dropped by the sender, %d missed by the receiver", len(got), n, st1.Dropped, st2.MissedIn)
	}
	if st1.FlowHeld == 0 {
		t.Error("the publisher never waited for the stream: the test proves less than it says")
	}
}

// TestNATSJetStreamQueueFull: a stream whose ingest queue is shorter
// than the window refuses what overflows it. The sender publishes less
// at once and sends the refused events again, and logs it; the receiver
// puts them back in order: every event is delivered, in order, none
// dropped or missed.
func TestNATSJetStreamQueueFull(t *testing.T) { bothFormats(t, testNATSJetStreamQueueFull) }

func testNATSJetStreamQueueFull(t *testing.T, pack string) {
	queue := 64 // below the window
	if pack != "" {
		// Packs carry many events each: fewer are in flight, the fewer
		// the slower the publisher (a busy machine).
		queue = 2
	}
	s1, s2, pub, r := jetStreamIngest(t, queueOf(queue), pack)
	// A slow publisher (the race detector, a loaded machine) may never
	// fill the queue: up to five bursts, numbered on from one to the
	// next, until it has refused something.
	got, sent := burstsUntil(t, pub, r, 20000, func([]int, int) bool { return logCount(s1, "JetStream's ingest queue is full") > 0 },
		"the stream refused nothing, or the sender did not log it")
	st1, st2 := natsStats(t, s1), natsStats(t, s2)
	t.Logf("%d of %d events delivered; %d dropped by the sender, %d missed by the receiver", len(got), sent, st1.Dropped, st2.MissedIn)
	if len(got) != sent || st1.Dropped != 0 || st2.MissedIn != 0 {
		t.Errorf("%d of %d events delivered; %d dropped by the sender, %d missed by the receiver", len(got), sent, st1.Dropped, st2.MissedIn)
	}
}

// TestNATSJetStreamNeverRoom: a stream whose ingest queue never has
// room for a pack (max_buffered_size below it) refuses it each time it
// is sent again. After 250 refusals (5 s) the sender drops it, counts
// and logs it, and its publishers go on; the receiver counts the
// events missed. Every event is delivered, in order, or counted, alike
// on both sides.
func TestNATSJetStreamNeverRoom(t *testing.T) {
	s1, s2, pub, r := jetStreamIngest(t, func(o *server.Options) { o.StreamMaxBufferedSize = 2048 }, `"pack": true`)
	const n = 200
	burst(t, pub, n)
	deadline := time.Now().Add(60 * time.Second)
	for uint64(r.Count("n"))+natsStats(t, s1).Dropped < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered, %d dropped, after 60 s", r.Count("n"), n, natsStats(t, s1).Dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One more event, alone in its pack, shows the receiver what went
	// missing before it.
	if err := pub.Emit("n", n); err != nil {
		t.Fatal(err)
	}
	got := increasingUpTo(t, r, "n", n)
	dropped, missed := natsStats(t, s1).Dropped, natsStats(t, s2).MissedIn
	t.Logf("%d of %d events delivered; %d dropped by the sender, %d missed by the receiver", len(got), n+1, dropped, missed)
	if dropped == 0 {
		t.Fatal("the stream refused nothing for good: the test proves less than it says")
	}
	if uint64(len(got))+dropped != n+1 || missed != dropped {
		t.Errorf("%d of %d events delivered; %d dropped by the sender, %d missed by the receiver: they do not add up", len(got), n+1, dropped, missed)
	}
	if logCount(s1, "JetStream refused events") == 0 {
		t.Error("the sender did not log the events it dropped")
	}
}

// burstsUntil emits bursts of n events "n" on pub, numbered on from one
// burst to the next, each heard in order by r (increasingUpTo), until
// done says of what r heard and what was sent that the bursts did what
// the test needs; after five that did not, it fails the test with
// never. It returns what r heard and how many were sent.
func burstsUntil(t *testing.T, pub *bus.Client, r *routertest.Recorder, n int, done func(got []int, sent int) bool, never string) (got []int, sent int) {
	t.Helper()
	const rounds = 5
	for round := 1; ; round++ {
		for i := range n {
			if err := pub.Emit("n", sent+i); err != nil {
				t.Fatal(err)
			}
		}
		sent += n
		got = increasingUpTo(t, r, "n", sent-1)
		if done(got, sent) {
			return got, sent
		}
		if round == rounds {
			t.Fatalf("%s in %d bursts: the test proves less than it says", never, rounds)
		}
		t.Logf("burst %d: %s; again", round, never)
	}
}

// queueOf limits the streams' ingest queues to n messages.
func queueOf(n int) func(*server.Options) {
	return func(o *server.Options) { o.StreamMaxBufferedMsgs = n }
}

// jetStreamIngest starts a NATS server whose streams' ingest queues
// limit sets, and two servers that bridge channel A
// through its stream, in the single format or with pack; it returns
// them, a client of the first and a recorder of the second's channel A.
func jetStreamIngest(t *testing.T, limit func(*server.Options), pack string) (s1, s2 *routertest.Server, pub *bus.Client, r *routertest.Recorder) {
	ns := startJetStream(t, limit)
	js := func(durable string) string { return jsMembers(ns.ClientURL(), durable, "300ms", pack) }
	s1 = routertest.NewServer(t, js("one"))
	s2 = routertest.NewServer(t, js("two"))
	pub = s1.Dial(t, "A")
	r = routertest.Record(t, s2.Dial(t, "A"), ".*")
	probe(t, pub, r)
	return s1, s2, pub, r
}

// TestNATSJetStreamRestart: a client streams as fast as it can while
// the NATS server goes away and comes back with its store. The messages
// the stream had not acknowledged when the connection went (up to the
// window) are sent again once it is back, and the receiver drops the
// copies of those the stream had stored: the stream holds every event
// once, in order, unless the sender dropped it (its buffer full while
// NATS was away), and a server that catches up from it afterwards
// misses none. (The receiving server is stopped meanwhile: one
// connected loses what NATS was sending it as it went, which NATS sends
// again after AckWait, late.)
func TestNATSJetStreamRestart(t *testing.T) { bothFormats(t, testNATSJetStreamRestart) }

func testNATSJetStreamRestart(t *testing.T, pack string) {
	dir := t.TempDir()
	store := func(o *server.Options) { o.JetStream, o.StoreDir = true, dir }
	ns := startNATS(t, 0, store)
	port := natsPort(ns)
	// The stream keeps the whole run: it streams unpaced while the
	// sender reconnects, and at about 260 bytes an event stored, a fast
	// machine passes the default maxbytes (64 MiB), which would discard
	// the oldest events before s3 catches up.
	extra := fmt.Sprintf(`"maxbytes": %d`, 1<<30)
	if pack != "" {
		extra = pack + ", " + extra
	}
	js := func(durable string) string { return jsMembers(ns.ClientURL(), durable, "300ms", extra) }
	s1 := routertest.NewServer(t, js("one"))
	s2 := routertest.NewServer(t, js("two")) // makes the durable consumer "two"
	pub := s1.Dial(t, "A")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	stream := streamSeq(pub)
	stream.flow(t, 5000)
	stopNATS(ns)
	stream.flow(t, 2000)
	startNATS(t, port, store)
	waitNATS(t, s1)
	stream.flow(t, 5000)
	n := stream.end(t)
	waitSent(t, s1)
	if err := pub.Emit("last", nil); err != nil {
		t.Fatal(err)
	}

	s3 := routertest.NewServer(t, js("two"))
	far := routertest.Record(t, s3.Dial(t, "A"), "seq|last")
	waitLast(t, far)
	got := dataOf(t, far, "seq")
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("event %d after %d: out of order or doubled", got[i], got[i-1])
		}
	}
	dropped, missed := natsStats(t, s1).Dropped, natsStats(t, s3).MissedIn
	t.Logf("%d events sent: %d delivered, %d dropped by the sender, %d missed by the receiver; %d times sent again",
		n, len(got), dropped, missed, logCount(s1, "they are sent again"))
	if uint64(len(got))+dropped != uint64(n) || missed != 0 {
		t.Errorf("%d events sent: %d delivered, %d dropped by the sender, %d missed by the receiver",
			n, len(got), dropped, missed)
	}
}
