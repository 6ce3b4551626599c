package natslink

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
)

// The tests here swap a link for another (CloseInto, as a reload does)
// while NATS is away or the outage buffer is being sent.

// deadURL is a NATS URL on a loopback port where nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprintf("nats://%s", ln.Addr())
}

// TestHandOverToPlainLink: a link with JetStream keeps events while NATS
// is away; a reload replaces it with a link without JetStream. The kept
// events go out through the new link as plain messages once it is
// released, what comes after them too, and the new link closes cleanly.
// (They went to the stream's publication, which the new link has not
// set up: its sending stopped for good, and its Close crashed.)
func TestHandOverToPlainLink(t *testing.T) {
	ns := startNATS(t)
	node := uuid.New()
	cfg := Config{Node: node, Buffer: 1 << 20, Heartbeat: 20 * time.Millisecond, PeerTimeout: 500 * time.Millisecond,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	old := cfg
	old.URL, old.JetStream = deadURL(t), true
	a, err := Open(old, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close) // CloseInto closed it, unless the test stopped before
	const n = 10
	for i := range n {
		publishA(t, a, false, node, []byte{0x91, byte(i)})
	}
	next := cfg
	next.URL, next.Held = ns.ClientURL(), true
	b, err := Open(next, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close) // closed below, unless the test stopped before
	waitFor(t, "the new link to connect", b.Connected)
	sub := subscribeA(t, ns.ClientURL())
	a.CloseInto(b)
	b.Release()
	publishA(t, b, false, node, []byte{0x91, n})
	allSentInOrder(t, sub, false, n+1, b, 1)
	b.Close()
}

// TestCloseKeepsWaitingPublisher: NATS is back, the outage buffer waits
// for a peer before it goes, and it is full: a publisher waits for
// room. A reload swaps the link then. The waiting event is not dropped:
// the old link, connected, sends its buffer and that event at once, and
// the new one what comes next.
func TestCloseKeepsWaitingPublisher(t *testing.T) {
	const buffer = 4096
	ns, port, sender, node := inOutage(t, false, buffer, nil)
	emit := func(l *Link, i int) error {
		data := make([]byte, 102) // a msgpack bin 8 of 100 bytes, the first i
		data[0], data[1], data[2] = 0xc4, 100, byte(i)
		return l.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: data}, uuid.Nil)
	}
	// A few events wait out the outage.
	const kept = 5
	for i := range kept {
		if err := emit(sender, i); err != nil {
			t.Fatal(err)
		}
	}
	startNATS(t, func(o *server.Options) { o.Port = port })
	waitFor(t, "the sender to reconnect", sender.Connected)
	sub := subscribeA(t, ns.ClientURL())
	// Fill the buffer while it waits for the peer (PeerTimeout 2 s),
	// until a publisher waits for room.
	waiting := make(chan error, 1)
	i := kept
	for ; ; i++ {
		if i > buffer {
			t.Fatalf("%d events published, none waited for room", i)
		}
		go func(i int) { waiting <- emit(sender, i) }(i)
		select {
		case err := <-waiting:
			if err != nil {
				t.Fatal(err)
			}
			continue
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	if sender.Stats().EventsOut != 0 {
		t.Fatalf("the buffer went before the test swapped the link: %+v", sender.Stats())
	}
	next, err := Open(Config{URL: ns.ClientURL(), Node: node, Buffer: buffer, Heartbeat: 20 * time.Millisecond,
		PeerTimeout: 2 * time.Second, ReconnectWait: 20 * time.Millisecond, Held: true, Logger: slog.New(slog.DiscardHandler)},
		func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	waitFor(t, "the new link to connect", next.Connected)
	sender.CloseInto(next)
	next.Release()
	if err := <-waiting; err != nil {
		t.Fatalf("the publisher that waited for room across the swap: %v", err)
	}
	i++
	if err := emit(next, i); err != nil {
		t.Fatal(err)
	}
	i++
	for k, d := range eventsOf(t, sub, false, i, next) {
		if d[2] != byte(k) {
			t.Fatalf("event %d is %d: out of order or doubled", k, d[2])
		}
	}
	if st := sender.Stats(); st.Dropped != 0 || st.EventsOut != uint64(i-1) {
		t.Errorf("the old link sent %d events and dropped %d, want %d and 0", st.EventsOut, st.Dropped, i-1)
	}
}

// TestHandOverNothingFits: a link keeps events while its NATS server is
// away; a reload points the server at another NATS server, with no
// buffer (buffer 0). The kept events are dropped and counted, and the
// new link, connected, sends what comes at once: it does not wait for
// the old link's peers before sending a buffer it does not have.
func TestHandOverNothingFits(t *testing.T) {
	_, _, a, node := inOutage(t, false, 1<<20, nil)
	const kept = 5
	for i := range kept {
		publishA(t, a, false, node, []byte{0x91, byte(i)})
	}
	ns2 := startNATS(t)
	b, err := Open(Config{URL: ns2.ClientURL(), Node: node, Heartbeat: 20 * time.Millisecond, PeerTimeout: 2 * time.Second,
		ReconnectWait: 20 * time.Millisecond, Held: true, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, "the new link to connect", b.Connected)
	sub := subscribeA(t, ns2.ClientURL())
	a.CloseInto(b)
	b.Release()
	if st := a.Stats(); st.Dropped != kept {
		t.Errorf("the old link dropped %d, want the %d it kept", st.Dropped, kept)
	}
	const n = 20
	for i := range n {
		publishA(t, b, false, node, []byte{0x91, byte(i)})
	}
	allSentInOrder(t, sub, false, n, b, 1)
}

// TestUnreleasedLinkSaysNothing: a link opened held for a reload that is
// not applied after all (another part of the configuration failed) is
// closed without ever being released. Its node's link goes on, so the
// other servers must not hear that the node left: no leave, no bye.
// A real leave, by the link that goes on, is heard.
func TestUnreleasedLinkSaysNothing(t *testing.T) {
	ns := startNATS(t)
	log := &syncBuffer{}
	cfg := func(node uuid.UUID) Config {
		return Config{URL: ns.ClientURL(), Node: node, Heartbeat: time.Second, PeerTimeout: 5 * time.Second,
			Logger: slog.New(slog.DiscardHandler)}
	}
	peerCfg := cfg(uuid.New())
	peerCfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	peer, err := Open(peerCfg, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	node := uuid.New()
	live, err := Open(cfg(node), func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peer to hear the live link", func() bool { return len(peer.Peers()) == 1 })
	held := cfg(node)
	held.Held = true
	undone, err := Open(held, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held link to connect", undone.Connected)
	undone.Close()
	time.Sleep(200 * time.Millisecond) // well within the live link's heartbeat of a second
	if len(peer.Peers()) != 1 || strings.Contains(log.String(), "a peer left NATS") {
		t.Fatalf("a held link closed unreleased made the peer drop its node: peers %v\n%s", peer.Peers(), log)
	}
	live.Close()
	waitFor(t, "the peer to hear the live link leave", func() bool {
		return len(peer.Peers()) == 0 && strings.Contains(log.String(), "a peer left NATS")
	})
}

// TestSwapWhileDisconnected: a link with subscriptions is swapped for
// another while its NATS server is away. Its subscriptions cannot end
// (NATS cannot confirm it), but they have nothing left to deliver: the
// swap does not wait swapDrainWait for them, nor logs anything dropped.
func TestSwapWhileDisconnected(t *testing.T) {
	log := &syncBuffer{}
	_, _, a, node := inOutage(t, false, 1<<20, log)
	a.SetChannels([]string{"A"})
	ns2 := startNATS(t)
	b, err := Open(Config{URL: ns2.ClientURL(), Node: node, Held: true, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetChannels([]string{"A"})
	start := time.Now()
	a.CloseInto(b)
	b.Release()
	if took := time.Since(start); took >= swapDrainWait {
		t.Errorf("the swap took %v: it waited for subscriptions with nothing to deliver", took)
	}
	if strings.Contains(log.String(), "did not deliver all it had taken") {
		t.Errorf("the swap logged a loss that did not happen:\n%s", log)
	}
}
