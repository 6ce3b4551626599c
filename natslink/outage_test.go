package natslink

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/wire"
)

// TestOutageKept: what a link takes while NATS is away waits until NATS
// is back and the link has heard again the peers it knew, or, for a
// peer that never comes back, PeerTimeout has passed; then it goes, in
// order, and nothing of it is lost, in either format. Sent the moment
// the connection came back, it would reach no one who had not
// subscribed yet (TestNATSRestart in the router shows that).
func TestOutageKept(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack bool) { testOutageKept(t, pack) })
}

func testOutageKept(t *testing.T, pack bool) {
	log := &syncBuffer{}
	ns, port, sender, node := inOutage(t, pack, 1<<20, log)
	const n = 50
	for i := range n {
		publishA(t, sender, pack, node, []byte{byte(i)}) // a msgpack fixint
	}
	waitFor(t, "the events to wait in the buffer", func() bool { return sender.Stats().Buffered > 0 })
	if st := sender.Stats(); st.EventsOut != 0 || st.Dropped != 0 {
		t.Fatalf("while NATS is away: %d events sent, %d dropped; want them all kept", st.EventsOut, st.Dropped)
	}

	startNATS(t, func(o *server.Options) { o.Port = port })
	// A plain subscriber that comes after the sender reconnected still
	// gets every event: the sender waits for the peer it knew.
	waitFor(t, "the sender to reconnect", sender.Connected)
	sub := subscribeA(t, ns.ClientURL())
	allSentInOrder(t, sub, pack, n, sender, 0)
	for _, want := range []string{"without having heard all the peers again", "unheard=1", "sending the events kept while NATS was away", "events=" + strconv.Itoa(n)} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
}

// TestOutageReplyWaitsWithJetStream: with JetStream, what the outage
// buffer holds for the stream goes the moment NATS is back, but a reply
// waits, as without JetStream, until the link has heard its peers
// again: NATS gives a reply only to a server subscribed already, and
// the asker's server, slower to reconnect, would have missed it.
func TestOutageReplyWaitsWithJetStream(t *testing.T) {
	dir := t.TempDir()
	store := func(o *server.Options) { o.JetStream, o.StoreDir = true, dir }
	ns := startNATS(t, store)
	port := ns.Addr().(*net.TCPAddr).Port
	cfg := func(n uuid.UUID, durable string, reconnect time.Duration) Config {
		return Config{URL: ns.ClientURL(), Node: n, JetStream: true, Durable: durable, Buffer: 1 << 20,
			Heartbeat: 20 * time.Millisecond, PeerTimeout: 10 * time.Second, ReconnectWait: reconnect,
			Logger: slog.New(slog.DiscardHandler)}
	}
	replier, err := Open(cfg(uuid.New(), "replier", 20*time.Millisecond), func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer replier.Close()
	asker := uuid.New()
	replies := make(chan *Event, 1)
	// The asker reconnects a second after NATS is back at the latest.
	a, err := Open(cfg(asker, "asker", time.Second), func(ev *Event) {
		if ev.To != uuid.Nil {
			e := *ev
			replies <- &e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitFor(t, "the peers", func() bool { return len(replier.Peers()) == 1 && len(a.Peers()) == 1 })
	waitForStream(t, ns)

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "both links to see NATS gone", func() bool { return !replier.Connected() && !a.Connected() })
	client := uuid.New()
	reply := &Event{Channel: "A", Event: "answer", ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), To: client, Re: uuid.New(),
		Data: []byte{0xc0}}
	if err := replier.Publish(reply, asker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reply to wait in the buffer", func() bool { return replier.Stats().Buffered > 0 })

	startNATS(t, store, func(o *server.Options) { o.Port = port })
	waitFor(t, "the replier to reconnect", replier.Connected)
	if a.Connected() {
		t.Log("the asker reconnected as soon as the replier: the test proves less than it says")
	}
	select {
	case ev := <-replies:
		if ev.To != client || ev.Event != "answer" {
			t.Errorf("got %+v, want the reply to %v", ev, client)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the reply never came (the asker is connected: %v; the replier sent %d, dropped %d)",
			a.Connected(), replier.Stats().EventsOut, replier.Stats().Dropped)
	}
}

// TestOutageDrainWaits: once NATS is back, a publisher whose event does
// not fit the buffer, still waiting to be sent, waits for room instead
// of the event being dropped, in either format: the buffer is sent at
// NATS's pace, and the publisher goes at that pace, as it does while
// connected. (The sender here waits PeerTimeout for a peer that does
// not come back before it sends the buffer; with JetStream the buffer
// goes at the pace of the stream's acknowledgements.) Every event
// arrives, in order, none dropped, and the waits are counted.
func TestOutageDrainWaits(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack bool) { testOutageDrainWaits(t, pack) })
}

func testOutageDrainWaits(t *testing.T, pack bool) {
	const buffer = 4096 // far below maxPackBytes: packs are made to fit it
	ns, port, sender, node := inOutage(t, pack, buffer, nil)

	emit := func(i int) {
		t.Helper()
		data := make([]byte, 102) // a msgpack bin 8 of 100 bytes, the first i
		data[0], data[1], data[2] = 0xc4, 100, byte(i)
		publishA(t, sender, pack, node, data)
	}
	// A few events wait out the outage, far from filling the buffer.
	const kept = 5
	for i := range kept {
		emit(i)
	}
	waitFor(t, "the events to wait in the buffer", func() bool { return sender.Stats().Buffered > 0 })

	startNATS(t, func(o *server.Options) { o.Port = port })
	waitFor(t, "the sender to reconnect", sender.Connected)
	sub := subscribeA(t, ns.ClientURL())
	// Connected, and for up to PeerTimeout the buffer waits for the
	// peer: four times what the buffer holds comes meanwhile.
	if st := sender.Stats(); !st.Connected || st.Buffered == 0 || st.EventsOut != 0 {
		t.Fatalf("connected %v, %d bytes buffered, %d events sent: want the buffer still waiting for the peer",
			st.Connected, st.Buffered, st.EventsOut)
	}
	const n = kept + 4*buffer/100
	for i := kept; i < n; i++ {
		emit(i)
	}
	allSentInOrder(t, sub, pack, n, sender, 2)
	if sender.Stats().FlowHeld == 0 {
		t.Error("no publisher waited for room in the buffer")
	}
}

// allSentInOrder checks that sub gets n events, in order (event i
// carries i in its data's byte at), and that sender counts them all
// sent and none dropped, its buffer empty.
func allSentInOrder(t *testing.T, sub *nats.Subscription, pack bool, n int, sender *Link, at int) {
	t.Helper()
	for i, d := range eventsOf(t, sub, pack, n, sender) {
		if d[at] != byte(i) {
			t.Fatalf("event %d is %d: out of order or doubled", i, d[at])
		}
	}
	// release counts an event sent once nats.go has taken it, which may
	// be after the subscriber got it.
	waitFor(t, "the buffer to empty and every event counted sent", func() bool {
		st := sender.Stats()
		return st.Buffered == 0 && st.EventsOut >= uint64(n)
	})
	if st := sender.Stats(); st.EventsOut != uint64(n) || st.Dropped != 0 {
		t.Errorf("%d events sent, %d dropped; want %d and 0", st.EventsOut, st.Dropped, n)
	}
}

// publishA publishes an event of data on channel A, from node, in the
// link's format: an event, or a frame for a pack.
func publishA(t *testing.T, l *Link, pack bool, node uuid.UUID, data []byte) {
	t.Helper()
	var err error
	if pack {
		err = l.PublishFrame([]byte("A"), wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node,
			Sender: node, Channel: "A", Event: "e", Data: data}))
	} else {
		err = l.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: data}, uuid.Nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// subscribeA is a plain NATS subscriber to channel A, on a connection
// of its own to url, subscribed when it returns.
func subscribeA(t *testing.T, url string) *nats.Subscription {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(Subject("netcluster", "", "A"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// eventsOf returns the data of the first n events sub gets, from
// messages of one event or packs, failing the test, with sender's
// stats, when 10 s pass without one.
func eventsOf(t *testing.T, sub *nats.Subscription, pack bool, n int, sender *Link) [][]byte {
	t.Helper()
	var got [][]byte
	for len(got) < n {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d events: %v; the sender: %+v", len(got), n, err, sender.Stats())
		}
		if !pack {
			got = append(got, m.Data)
			continue
		}
		for body := m.Data; len(body) > 0; {
			_, hdr, rest, err := nextPacked(body)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, hdr.Data)
			body = rest
		}
	}
	return got
}

// inOutage starts a NATS server and a sending link (with pack, a
// buffer of buffer bytes, and logging to log unless nil) that knows a
// peer, then stops the server, and the peer, which will not come back
// (the sender waits for it no longer than PeerTimeout once NATS is
// back). It returns the stopped server, its port, the sender, closed
// when the test ends, and the sender's node.
func inOutage(t *testing.T, pack bool, buffer int, log io.Writer) (ns *server.Server, port int, sender *Link, node uuid.UUID) {
	t.Helper()
	ns = startNATS(t)
	port = ns.Addr().(*net.TCPAddr).Port
	cfg := func(n uuid.UUID, log io.Writer) Config {
		logger := slog.New(slog.DiscardHandler)
		if log != nil {
			logger = slog.New(slog.NewTextHandler(log, nil))
		}
		// A plain subscriber must subscribe within PeerTimeout of the
		// sender's reconnection to get the buffer: 2 s leaves room for
		// a loaded machine under the race detector.
		return Config{URL: ns.ClientURL(), Node: n, Pack: pack, Buffer: buffer, Heartbeat: 20 * time.Millisecond,
			PeerTimeout: 2 * time.Second, ReconnectWait: 20 * time.Millisecond, Logger: logger}
	}
	node = uuid.New()
	sender, err := Open(cfg(node, log), func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sender.Close)
	peer, err := Open(cfg(uuid.New(), nil), func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peer", func() bool { return len(sender.Peers()) == 1 })
	ns.Shutdown()
	ns.WaitForShutdown()
	peer.Close()
	waitFor(t, "the sender to see NATS gone", func() bool { return !sender.Connected() })
	return ns, port, sender, node
}
