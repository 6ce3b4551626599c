//go:build unix

package router_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/natslink"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
	"github.com/vmihailenco/msgpack/v5"
)

// TestNATSJetStreamKilledReceiver: with JetStream, a receiving server is
// killed while it delivers a stream that a client emitted as fast as it
// could, holding events it took from the consumer without acknowledging
// them, and starts again on the same consumer. It gets those events at once, then the rest, in
// order, none missed. (NATS itself would send them again only after
// AckWait, behind newer ones. What the killed server had acknowledged
// but not yet written to its client died with it: not covered.)
func TestNATSJetStreamKilledReceiver(t *testing.T) { bothFormats(t, testNATSJetStreamKilledReceiver) }

func testNATSJetStreamKilledReceiver(t *testing.T, pack string) {
	ns := startJetStream(t)
	js := func(durable string) string {
		// Room for every event: none is dropped from the stream.
		extra := fmt.Sprintf(`"jetstream": true, "durable": %q, "catchup": "2s", "maxbytes": %d`, durable, 1<<30)
		if pack != "" {
			extra += ", " + pack
		}
		return natsMembers(ns.ClientURL(), extra, bridged)
	}
	s1 := routertest.NewServer(t, js("one"))
	pub := s1.Dial(t, "A")
	clients := ns.NumClients()
	s2 := startNcserver(t, js("two"), debugLog...)
	before := routertest.Record(t, s2.dial(t, "A"), "seq")
	probe(t, pub, routertest.Record(t, s2.dial(t, "A"), "probe"))

	each := 20000
	if testing.Short() {
		each = 5000
	}
	// As fast as the publisher goes, four times what the receiver has
	// delivered when it is killed.
	stream := streamSeq(pub)
	stream.flow(t, int64(4*each))
	n := stream.end(t)
	routertest.WaitFor(t, "the receiver to deliver a stream", func() bool { return before.Count("seq") >= each })
	// Stopped first, so that it surely dies with events taken: NATS
	// goes on sending to its pull requests.
	s2.signal(t, syscall.SIGSTOP)
	time.Sleep(300 * time.Millisecond)
	s2.signal(t, syscall.SIGKILL)
	<-s2.done
	if err := pub.Emit("last", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "nats-server to drop the killed server's connection", func() bool { return ns.NumClients() == clients })
	from, pending := firstUnacked(t, ns.ClientURL(), "two")
	if pending == 0 {
		t.Fatal("the killed server left no event unacknowledged: the test proves less than it says")
	}

	s3 := startNcserver(t, js("two"), debugLog...) // s2 again: the same consumer
	after := routertest.Record(t, s3.dial(t, "A"), "seq|last")
	waitLast(t, after)
	got := dataOf(t, after, "seq")
	if len(got) == 0 {
		t.Fatal("the restarted server delivered nothing")
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("event %d after %d: out of order or doubled", got[i], got[i-1])
		}
	}
	dropped, missed := natsStats(t, s1).Dropped, s3.stats(t).NATS.MissedIn
	heard := dataOf(t, before, "seq")
	t.Logf("%d events sent; %d delivered before the kill, up to %d; %d unacknowledged from %d; %d delivered after, from %d; %d dropped by the sender, %d missed by the receiver",
		n, len(heard), heard[len(heard)-1], pending, from, len(got), got[0], dropped, missed)
	if got[0] > from {
		t.Errorf("the restarted server began at event %d, past the first one unacknowledged, %d", got[0], from)
	}
	if missing := n - got[0] - len(got); uint64(missing) != dropped || missed != 0 {
		t.Errorf("from event %d on, %d never delivered, %d dropped by the sender, %d missed by the restarted receiver",
			got[0], missing, dropped, missed)
	}
}

// TestNATSJetStreamRestartReceiving: as TestNATSJetStreamRestart, but
// the receiving server stays connected while NATS goes away and comes
// back with its store. It is stopped (SIGSTOP) for a moment before, so
// that NATS surely dies with events it counted as sent to it: those
// come again as soon as the link is back (the consumer is reset to its
// first unacknowledged event), not after AckWait. Every event arrives
// once, in order, unless the sender dropped it, and none is missed.
func TestNATSJetStreamRestartReceiving(t *testing.T) {
	bothFormats(t, testNATSJetStreamRestartReceiving)
}

// debugLog are the flags of a child ncserver whose log, shown should
// the test fail, tells when its consumer was reset.
var debugLog = []string{"-log-level", "debug"}

func testNATSJetStreamRestartReceiving(t *testing.T, pack string) {
	dir := t.TempDir()
	store := func(o *server.Options) {
		o.JetStream, o.StoreDir = true, dir
		// Its stop waits no longer than that for the stopped server.
		o.WriteDeadline = time.Second
	}
	ns := startNATS(t, 0, store)
	port := natsPort(ns)
	js := func(durable string) string {
		extra := fmt.Sprintf(`"jetstream": true, "durable": %q, "catchup": "300ms", "maxbytes": %d`, durable, 1<<30)
		if pack != "" {
			extra += ", " + pack
		}
		return natsMembers(ns.ClientURL(), extra, bridged)
	}
	s1 := routertest.NewServer(t, js("one"))
	s2 := startNcserver(t, js("two"), debugLog...)
	pub := s1.Dial(t, "A")
	ns2URL := ns.ClientURL() // the NATS server that comes back
	far := routertest.Record(t, s2.dial(t, "A"), "seq|last")
	probe(t, pub, routertest.Record(t, s2.dial(t, "A"), "probe"))
	sent := -1 // the stream's events, once ended
	defer func() {
		if t.Failed() {
			msgs := far.Messages()
			tail := []string{}
			for _, m := range msgs[max(0, len(msgs)-3):] {
				var n int
				m.Decode(&n)
				tail = append(tail, fmt.Sprintf("%s %d", m.Event, n))
			}
			t.Logf("%d events of the stream sent; the receiver's client heard %d messages, the last %v", sent, len(msgs), tail)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if reply, err := s2.ctl.Request(ctx, router.ControlPrefix+"stats", nil); err == nil {
				var st map[string]any
				reply.Decode(&st)
				t.Logf("the receiver's stats: %v", st)
			}
			t.Logf("the sender's NATS counters: %+v", natsStats(t, s1))
			t.Logf("the receiver's NATS counters: %+v", s2.stats(t).NATS)
			t.Logf("the receiver's consumer: %s", consumerState(ns2URL, "two"))
		}
	}()

	each := int64(5000)
	if testing.Short() {
		each = 2000
	}
	stream := streamSeq(pub)
	routertest.WaitFor(t, "the receiver to deliver a stream", func() bool { return far.Count("seq") >= int(each) })
	s2.signal(t, syscall.SIGSTOP)
	time.Sleep(300 * time.Millisecond)
	stopNATS(ns)
	s2.signal(t, syscall.SIGCONT)
	stream.flow(t, each/2)
	ns2URL = startNATS(t, port, store).ClientURL()
	waitNATS(t, s1)
	routertest.WaitFor(t, "the receiver to reconnect", func() bool { return s2.stats(t).NATS.Connected })
	stream.flow(t, each)
	n := stream.end(t)
	sent = n
	waitSent(t, s1)
	if err := pub.Emit("last", nil); err != nil {
		t.Fatal(err)
	}
	waitLast(t, far)
	got := dataOf(t, far, "seq")
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("event %d after %d: out of order or doubled", got[i], got[i-1])
		}
	}
	dropped, missed := natsStats(t, s1).Dropped, s2.stats(t).NATS.MissedIn
	t.Logf("%d events sent: %d delivered, %d dropped by the sender, %d missed by the receiver", n, len(got), dropped, missed)
	if uint64(len(got))+dropped != uint64(n) || missed != 0 {
		t.Errorf("%d events sent: %d delivered, %d dropped by the sender, %d missed by the receiver",
			n, len(got), dropped, missed)
	}
}

// clusterStream is the default cluster's stream on the NATS server at
// url, through a connection of its own that done closes.
func clusterStream(ctx context.Context, url string) (s jetstream.Stream, done func(), err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		s, err = js.Stream(ctx, natslink.StreamName("netcluster", ""))
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return s, nc.Close, nil
}

// consumerState is what NATS at url tells of consumer durable: how far
// it delivered and was acknowledged, what it has yet to deliver, and
// what waits for an acknowledgement.
func consumerState(url, durable string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, done, err := clusterStream(ctx, url)
	if err != nil {
		return err.Error()
	}
	defer done()
	c, err := s.Consumer(ctx, durable)
	if err != nil {
		return err.Error()
	}
	i := c.CachedInfo()
	return fmt.Sprintf("delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d, waiting pulls %d",
		i.Delivered.Stream, i.AckFloor.Stream, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting)
}

// firstUnacked returns the first event of the stream's first
// message that consumer durable has not acknowledged, and how many
// messages it has taken without acknowledging them.
func firstUnacked(t testing.TB, url, durable string) (first int, pending int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, done, err := clusterStream(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	c, err := s.Consumer(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	// NATS applies acknowledgements in a queue of its own: the floor
	// is read once two readings 100 ms apart agree.
	var info *jetstream.ConsumerInfo
	for {
		was := info
		if info, err = c.Info(ctx); err != nil {
			t.Fatal(err)
		}
		if was != nil && was.AckFloor.Stream == info.AckFloor.Stream && was.NumAckPending == info.NumAckPending {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	m, err := s.GetMsg(ctx, info.AckFloor.Stream+1)
	if err != nil {
		t.Fatal(err)
	}
	data := m.Data
	if m.Header.Get(natslink.HeaderPack) != "" {
		// A pack: its first frame's data.
		n := binary.BigEndian.Uint32(data)
		hdr, err := wire.ParseEvent(data[wire.HeaderLen : wire.HeaderLen+int(n)])
		if err != nil {
			t.Fatal(err)
		}
		data = hdr.Data
	}
	if err := msgpack.Unmarshal(data, &first); err != nil {
		t.Fatalf("stream message %d: %v", info.AckFloor.Stream+1, err)
	}
	return first, info.NumAckPending
}
