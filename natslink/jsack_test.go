package natslink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestJetStreamSilentStream: a stream that stops acknowledging while
// the connection stays up holds the publisher back for the
// acknowledgement timeout at most: then the publisher goes on, and the
// events whose acknowledgement never came are counted
// (jetstream_unacked) and logged. Here the stream is deleted and a
// program that never answers listens on its subjects, as a stream
// without its quorum is there and never answers. Once that program
// leaves, the stream is refused (no stream: counted dropped), made
// again, and stores the events that follow.
func TestJetStreamSilentStream(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, dir })
	log := &syncBuffer{}
	node := uuid.New()
	// CatchUp holds the consumer, which the test does not need: the
	// link then makes the stream once, as it connects, and not a second
	// time (the end of CatchUp) after the test deleted it.
	l, err := Open(Config{URL: ns.ClientURL(), Node: node, JetStream: true, Durable: "silent", CatchUp: time.Hour,
		Heartbeat: 50 * time.Millisecond, PeerTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(log, nil))},
		func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	js := jetStreamClient(t, ns.ClientURL())
	nc := js.Conn()
	name := StreamName(l.cfg.Prefix, l.cfg.Cluster)
	stored := func() uint64 {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			return 0
		}
		info, err := s.Info(context.Background())
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	waitForStream(t, ns)
	publishA(t, l, false, node, []byte{0})
	waitFor(t, "the first event to be stored", func() bool { return stored() == 1 })

	var heard atomic.Int64
	silent, err := nc.Subscribe(Subject(l.cfg.Prefix, l.cfg.Cluster, ">"), func(*nats.Msg) { heard.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	// The window's messages go at once; the next waits for room, which
	// only the acknowledgement timeout of the first ones makes.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range jsMaxPending + 1 {
			publishA(t, l, false, node, []byte{byte(i % 128)})
		}
	}()
	select {
	case <-done:
	case <-time.After(6 * jsAckTimeout):
		t.Fatalf("the publisher is still held back after %v: %+v", 6*jsAckTimeout, l.Stats())
	}
	// Nothing is acknowledged: the room came from a timeout.
	if st := l.Stats(); st.JetStreamUnacked == 0 || st.FlowHeld == 0 || st.Dropped != 0 {
		t.Errorf("jetstream_unacked %d, flow_held %d, dropped %d; want some, some, and 0",
			st.JetStreamUnacked, st.FlowHeld, st.Dropped)
	}
	if !strings.Contains(log.String(), "JetStream did not acknowledge events") {
		t.Errorf("the log does not say the stream did not acknowledge:\n%s", log)
	}

	// The last event may still be on its way to NATS: the silent
	// program hears it before it leaves.
	waitFor(t, "the silent program to hear every event", func() bool { return heard.Load() == jsMaxPending+1 })
	if err := silent.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to store events again", func() bool {
		publishA(t, l, false, node, []byte{1})
		time.Sleep(10 * time.Millisecond)
		return stored() > 0
	})
	if st := l.Stats(); st.Dropped == 0 || !strings.Contains(log.String(), "JetStream refused events") {
		t.Errorf("dropped %d; want the events refused while there was no stream counted and logged:\n%s", st.Dropped, log)
	}
	for deadline := time.Now().Add(10 * time.Second); l.Stats().JetStreamUnacked < jsMaxPending+1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("jetstream_unacked %d, want %d: %+v", l.Stats().JetStreamUnacked, jsMaxPending+1, l.Stats())
		}
	}
	if n := l.Stats().JetStreamUnacked; n != jsMaxPending+1 {
		t.Errorf("jetstream_unacked %d, want %d", n, jsMaxPending+1)
	}
}

// jetStreamClient connects a JetStream client to url, closed when the
// test ends.
func jetStreamClient(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitForStream waits until ns holds a stream: the link made it. A
// test that stops ns must wait for that first, or nats-server may make
// the stream as it shuts down, and leave its store's goroutines running.
func waitForStream(t *testing.T, ns *server.Server) {
	t.Helper()
	waitFor(t, "the link to make the stream", func() bool { return ns.GlobalAccount().JetStreamUsage().Streams > 0 })
}

// TestSendAgainKeepsOrder: when the connection is lost while the
// outage buffer is being sent to the stream, what was in flight goes
// back to the buffer (jsSendAgain), and so does the rest of what was
// being sent (keepAgain), in either order: the messages in flight were
// sent first, and stay ahead of the rest, and of what came to the
// buffer meanwhile. Receivers would put them back in order, if they
// came within 250 ms of each other.
func TestSendAgainKeepsOrder(t *testing.T) {
	for _, first := range []string{"jsSendAgain", "keepAgain"} {
		t.Run(first+" first", func(t *testing.T) {
			ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
			// CatchUp: the link makes the stream once (see
			// TestJetStreamSilentStream), and not as NATS shuts down.
			l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: "again", CatchUp: time.Hour,
				Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			waitForStream(t, ns)
			// NATS away: nothing sends the buffer while the test fills it.
			ns.Shutdown()
			ns.WaitForShutdown()
			waitFor(t, "the link to see NATS gone", func() bool { return !l.Connected() })

			msg := func(name string) keptMsg {
				m := nats.NewMsg(Subject("netcluster", "", "A"))
				m.Header.Set(HeaderEvent, name)
				return keptMsg{m: m, events: 1, size: msgSize(m), stored: true}
			}
			o := &l.jsOut
			o.mu.Lock()
			for _, name := range []string{"a1", "a2"} {
				f := &jsFlight{m: msg(name).m, events: 1}
				o.inflight = append(o.inflight, f)
				o.byMsg[f.m] = f
			}
			o.mu.Unlock()
			l.out.mu.Lock()
			l.out.queue = append(l.out.queue, msg("c1")) // came while the batch was sent
			l.out.mu.Unlock()
			rest := []keptMsg{msg("b1"), msg("b2")}
			if first == "jsSendAgain" {
				l.jsSendAgain(nil)
				l.keepAgain(rest, true)
			} else {
				l.keepAgain(rest, true)
				l.jsSendAgain(nil)
			}
			l.out.mu.Lock()
			var got []string
			for _, k := range l.out.queue {
				got = append(got, k.m.Header.Get(HeaderEvent))
			}
			events := l.out.events
			l.out.mu.Unlock()
			if want := []string{"a1", "a2", "b1", "b2", "c1"}; !slices.Equal(got, want) || events != len(want) {
				t.Errorf("the buffer holds %v (%d events), want %v", got, events, want)
			}
		})
	}
}

// TestSendAgainAheadOfRelease: the connection goes while the outage
// buffer is being sent, the link waiting for room in the window
// (jsRoom) with the rest of the buffer in hand. What was in flight goes
// back to the buffer (jsSendAgain), and once NATS is back the stream
// stores it ahead of that rest. (The rest went on to nats.go, which
// kept it while it reconnected and sent it first: a window of messages,
// or nats.go's whole reconnect buffer, ahead of those before it, more
// than receivers can hold back to put them in order.)
func TestSendAgainAheadOfRelease(t *testing.T) {
	l, restart := streamOnlyLink(t, "ahead")
	waitFor(t, "the link to see NATS gone", func() bool { return !l.Connected() })

	msg := eventMsg
	o := &l.jsOut
	o.mu.Lock()
	for _, name := range []string{"a1", "a2"} { // in flight as the connection went
		f := &jsFlight{m: msg(name), events: 1}
		o.inflight = append(o.inflight, f)
		o.byMsg[f.m] = f
	}
	o.mu.Unlock()
	o.pending.Store(o.window.Load()) // the window full: release waits
	l.out.mu.Lock()
	for _, name := range []string{"b1", "b2"} { // the buffer, sent after them
		m := msg(name)
		l.out.queue = append(l.out.queue, keptMsg{m: m, events: 1, size: msgSize(m), channel: true, stored: true})
		l.out.bytes += msgSize(m)
		l.out.events++
	}
	l.out.holding = true
	l.out.mu.Unlock()
	held := l.flowHeld.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.release(true)
	}()
	waitFor(t, "release to wait for room", func() bool { return l.flowHeld.Load() > held })
	l.jsSendAgain(nil) // nats.go failed a1 and a2: they go back
	o.pending.Store(0)
	o.room <- struct{}{}
	<-done

	ns := restart()
	waitFor(t, "the link back", l.Connected)
	if got, want := storedEvents(t, ns.ClientURL(), 4), []string{"a1", "a2", "b1", "b2"}; !slices.Equal(got, want) {
		t.Errorf("the stream holds %v, want %v: what was in flight first", got, want)
	}
}

// streamOnlyLink opens a link with JetStream on a NATS server with a
// store of its own, and stops the server once the link has made the
// stream. The link makes no consumer (CatchUp; see
// TestSendAgainKeepsOrder). restart starts the server again, on the
// same port and store. mods change the link's Config.
func streamOnlyLink(t *testing.T, durable string, mods ...func(*Config)) (l *Link, restart func() *server.Server) {
	t.Helper()
	dir := t.TempDir()
	store := func(o *server.Options) { o.JetStream, o.StoreDir = true, dir }
	ns := startNATS(t, store)
	port := ns.Addr().(*net.TCPAddr).Port
	cfg := Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: durable, CatchUp: time.Hour,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	for _, mod := range mods {
		mod(&cfg)
	}
	l, err := Open(cfg, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	waitForStream(t, ns)
	ns.Shutdown()
	ns.WaitForShutdown()
	return l, func() *server.Server { return startNATS(t, store, func(o *server.Options) { o.Port = port }) }
}

// publishStored publishes an event of channel A, named, with nil data,
// to the stream, as a plain JetStream program would.
func publishStored(t *testing.T, js jetstream.JetStream, event string) {
	t.Helper()
	m := eventMsg(event)
	m.Data = []byte{0xc0}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// eventMsg is a message of channel A, named.
func eventMsg(name string) *nats.Msg {
	m := nats.NewMsg(Subject("netcluster", "", "A"))
	m.Header.Set(HeaderEvent, name)
	return m
}

// storedEvents waits until the stream holds n messages, and returns the
// names of the first n, in the stream's order.
func storedEvents(t *testing.T, url string, n int) []string {
	t.Helper()
	js := jetStreamClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, StreamName("netcluster", ""))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("%d events in the stream", n), func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs >= uint64(n)
	})
	var got []string
	for seq := uint64(1); seq <= uint64(n); seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Header.Get(HeaderEvent))
	}
	return got
}

// TestNothingKeptWhileReconnecting: a message the link hands nats.go
// as nats.go begins to reconnect (the link looked, saw it connected,
// and nats.go then read the end of the connection) is refused, and
// kept behind what was in flight (jsSendAgain), not kept by nats.go
// and sent first on reconnecting: the stream stores what was in flight
// first. Before, nats.go kept it in its reconnect buffer, and the
// stream stored it ahead of the messages sent before it: a receiving
// server that starts from the stream later delivered them out of
// order, at once (numbered below the first it got).
//
// The link hears the connection go (jsSendAgain, on nats.go's callback
// goroutine) whenever nats.go runs its handlers: here, the hook makes
// it hear it again while nats.go is taking that message, as it did in
// one run of a hundred or so under load. The message is still kept in
// its place, once. Before, jsSendAgain put it back as well, at the head
// of the buffer: the stream stored it first, and twice.
func TestNothingKeptWhileReconnecting(t *testing.T) {
	var lostNow atomic.Bool // set once l is: the hook reads it then
	var l *Link
	l, restart := streamOnlyLink(t, "kept", func(c *Config) {
		c.handing = func() {
			if lostNow.CompareAndSwap(true, false) {
				l.jsSendAgain(nil)
			}
		}
	})
	waitFor(t, "nats.go to reconnect", l.nc.IsReconnecting)

	msg := eventMsg
	o := &l.jsOut
	o.mu.Lock()
	a := &jsFlight{m: msg("a"), events: 1} // in flight as the connection went
	o.inflight = append(o.inflight, a)
	o.byMsg[a.m] = a
	o.mu.Unlock()
	l.jsSendAgain(nil) // nats.go failed it: it goes back
	// What release does with the next message of the buffer, had it
	// seen the link connected the instant before.
	lostNow.Store(true)
	b := msg("b")
	if err := l.publishMsg(b, 1, true); !connectionLost(err) {
		t.Errorf("nats.go reconnecting took the message (err %v): it sends it first once back", err)
	} else {
		l.keepAgain([]keptMsg{{m: b, events: 1, size: msgSize(b), channel: true, stored: true}}, true)
	}

	if lostNow.Load() {
		t.Fatal("the link did not hand b to nats.go: the test proves nothing")
	}
	ns := restart()
	waitFor(t, "the link back", l.Connected)
	if got, want := storedEvents(t, ns.ClientURL(), 2), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("the stream holds %v, want %v: what was in flight first", got, want)
	}
	waitFor(t, "every message acknowledged, the buffer empty", func() bool {
		return l.jsOut.pending.Load() == 0 && l.keptBytes() == 0
	})
	if n := streamMsgs(t, ns.ClientURL()); n != 2 {
		t.Errorf("the stream holds %d messages, want a and b once each", n)
	}
}

// streamMsgs returns how many messages the stream holds.
func streamMsgs(t *testing.T, url string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := jetStreamClient(t, url).Stream(ctx, StreamName("netcluster", ""))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestStuckJetStreamRequest: a request to JetStream that NATS will
// never answer (here the connection it went on stalls, and is then cut)
// holds up neither Stats, nor Release (a reload's swap, on a link
// opened held), nor the link's handling of the lost connection, nor
// Close: the request ends as the link closes. Before, each waited for
// the request's timeout, 5 s, and nats.go's callbacks (the lost
// connection, the reconnection) behind them.
func TestStuckJetStreamRequest(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	p := newStallProxy(t, ns.Addr().String())
	log := &syncBuffer{}
	l, err := Open(Config{URL: p.url(), Node: uuid.New(), JetStream: true, Durable: "cut", Held: true,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(log, nil))}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitForStream(t, ns)
	p.pause()
	// The proxy's read under way when it paused still goes through: a
	// ping takes it, if a heartbeat has not already (then the ping
	// waits, and the flush fails).
	l.nc.FlushTimeout(500 * time.Millisecond)
	// SetChannels asks JetStream for the stream and the consumer,
	// holding the JetStream state's lock: still under way a moment
	// later, it waits for an answer that will not come.
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		l.SetChannels([]string{"A"})
	}()
	waitFor(t, "the request to JetStream", func() bool {
		if l.js.mu.TryLock() {
			l.js.mu.Unlock()
			return false
		}
		return true
	})
	select {
	case <-applied:
		t.Fatal("SetChannels did not wait for JetStream: the test proves nothing")
	case <-time.After(100 * time.Millisecond):
	}
	const bound = 2500 * time.Millisecond // half the request's timeout
	start := time.Now()
	l.Stats()
	if d := time.Since(start); d > bound {
		t.Errorf("Stats took %v: it waited for the request", d)
	}
	start = time.Now()
	l.Release()
	if d := time.Since(start); d > bound {
		t.Errorf("Release took %v: it waited for the request", d)
	}

	p.resume() // cuts the connection the request went on
	start = time.Now()
	for !strings.Contains(log.String(), "reconnected to NATS") {
		if time.Since(start) > bound {
			t.Fatalf("the link has not seen the reconnection after %v: its callbacks wait for the request\n%s", bound, log)
		}
		time.Sleep(time.Millisecond)
	}
	start = time.Now()
	l.Close()
	if d := time.Since(start); d > bound {
		t.Errorf("Close took %v: it waited for the request", d)
	}
	<-applied
}

// TestJetStreamAppliedOnce: a link with no CatchUp asks JetStream for
// its stream once as it connects. Before, the catch-up timer, set to 0,
// fired at once and applied the stream and the consumer a second time.
func TestJetStreamAppliedOnce(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	nc := jetStreamClient(t, ns.ClientURL()).Conn()
	var creates atomic.Int64
	if _, err := nc.Subscribe("$JS.API.STREAM.CREATE.>", func(*nats.Msg) { creates.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	hb := 20 * time.Millisecond
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: "once",
		Heartbeat: hb, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	waitForStream(t, ns)
	// A second request would follow the first at once; ten heartbeats
	// leave it time to come, and to be heard.
	time.Sleep(10 * hb)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := creates.Load(); n != 1 {
		t.Errorf("the link asked JetStream for its stream %d times, want once", n)
	}
}

// TestJetStreamStreamMadeAgain: a link that starts for the first time
// takes the events stored since it found the stream, once its catch-up
// wait is over; if the stream is made again meanwhile (its store was
// lost), from the new stream's first event, and not from where the old
// one had got to, which the new one has not reached.
func TestJetStreamStreamMadeAgain(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	js := jetStreamClient(t, ns.ClientURL())
	name := StreamName("netcluster", "")
	subjects := []string{Subject("netcluster", "", ">")}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
	publish := func(event string) { t.Helper(); publishStored(t, js, event) }
	for range 5 {
		publish("old")
	}
	got := make(chan string, 16)
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: "again", CatchUp: time.Second,
		Logger: slog.New(slog.DiscardHandler)}, func(ev *Event) { got <- ev.Event })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetChannels([]string{"A"})
	waitFor(t, "the link to find the stream", func() bool {
		l.js.mu.Lock()
		defer l.js.mu.Unlock()
		return l.js.startSeq == 6
	})
	if err := js.DeleteStream(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		publish("new")
	}
	for i := range 3 {
		select {
		case ev := <-got:
			if ev != "new" {
				t.Fatalf("event %d is %q, want new", i, ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of the 3 events of the new stream delivered", i)
		}
	}
}

// TestJetStreamConsumerDeleted: an operator deletes the link's durable
// consumer while it consumes. nats.go ends the subscription for good;
// the link makes the consumer again at once and goes on delivering,
// where before it delivered nothing, and logged nothing, until its
// connection was next lost.
func TestJetStreamConsumerDeleted(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	js := jetStreamClient(t, ns.ClientURL())
	got := make(chan string, 16)
	logs := &syncBuffer{}
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: "deleted",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, func(ev *Event) { got <- ev.Event })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetChannels([]string{"A"})
	name := StreamName("netcluster", "")
	// A consumer made since the one last seen, which the link pulls
	// from.
	var made time.Time
	consumer := func() bool {
		c, err := js.Consumer(context.Background(), name, "deleted")
		if err != nil || c.CachedInfo().Created.Equal(made) || c.CachedInfo().NumWaiting == 0 {
			return false
		}
		made = c.CachedInfo().Created
		return true
	}
	waitFor(t, "the link to consume", consumer)
	publish := func(event string) { t.Helper(); publishStored(t, js, event) }
	expect := func(want string) {
		t.Helper()
		select {
		case ev := <-got:
			if ev != want {
				t.Fatalf("event %q, want %q; the link logged:\n%s", ev, want, logs.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q not delivered; the link logged:\n%s", want, logs.String())
		}
	}
	publish("before")
	expect("before")
	if err := js.DeleteConsumer(context.Background(), name, "deleted"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the link to consume from a consumer made again", consumer)
	publish("after")
	expect("after")
	if !strings.Contains(logs.String(), "the JetStream consumer stopped: making it again") {
		t.Errorf("nothing logged of the consumer's end:\n%s", logs.String())
	}
}

// TestRetryWhileReconnecting: a message refused for a full ingest
// queue, sent again (jsRetry) once the connection is gone but before
// the link has heard it go, is kept with what is in flight, and the
// stream stores it once NATS is back. nats.go refuses it (it keeps
// nothing while it reconnects: natsPending); before, the link took that
// for the stream's refusal, and dropped the events. The window is short
// in life (nats.go runs the link's handlers soon after), so the test
// makes the retry by hand, with NATS gone.
func TestRetryWhileReconnecting(t *testing.T) {
	l, restart := streamOnlyLink(t, "retry")
	waitFor(t, "nats.go to reconnect", l.nc.IsReconnecting)

	m := eventMsg("r1")
	m.Data = []byte{0xc0}
	o := &l.jsOut
	o.mu.Lock()
	f := &jsFlight{m: m, events: 1, retrying: true, again: true, tries: 1}
	o.inflight = append(o.inflight, f)
	o.byMsg[m] = f
	o.retry = append(o.retry, f)
	o.waiting.Add(1)
	o.mu.Unlock()
	o.pending.Add(1)
	o.sending.Add(1)
	l.eventsOut.Add(1) // counted as sent when first sent
	l.jsRetry()

	if st := l.Stats(); st.Dropped != 0 {
		t.Errorf("%d events dropped; want r1 kept to be sent again", st.Dropped)
	}
	if n, w := o.pending.Load(), o.waiting.Load(); n != 0 || w != 0 {
		t.Errorf("%d messages still wait for an acknowledgement, %d to be sent again; want none", n, w)
	}
	ns := restart()
	if got := storedEvents(t, ns.ClientURL(), 1); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("the stream holds %v, want [r1]", got)
	}
}

// TestRoomWakesEveryWaiter: two wait in jsRoom at once (release sending
// the outage buffer, and a publisher), held by a message refused for a
// full queue; it lands, the last in flight, and its acknowledgement
// kicks once. Both go on: with one kick for one waiter, the other
// waited, with room, for a kick that nothing in flight was left to give.
func TestRoomWakesEveryWaiter(t *testing.T) {
	l := &Link{flowStop: make(chan struct{})}
	defer close(l.flowStop)
	l.jsOut.init()
	o := &l.jsOut
	o.window.Store(jsMinWindow)
	o.pending.Store(1) // the refused message, sent again
	o.waiting.Store(1)
	var gone [2]chan struct{}
	for i := range gone {
		gone[i] = make(chan struct{})
		go func() {
			l.jsRoom()
			close(gone[i])
		}()
	}
	// Both past their look at the room before it comes: one kick, the
	// old way, wakes one of them, and the other waits for good.
	waitFor(t, "both to wait", func() bool { return l.flowHeld.Load() == 2 })
	// It lands: jsLanded ends its wait, then its acknowledgement is
	// resolved.
	o.waiting.Add(-1)
	l.jsResolved()
	for i, c := range gone {
		select {
		case <-c:
		case <-time.After(2 * time.Second):
			t.Errorf("waiter %d still waits in jsRoom: %d of a window of %d pending, %d refused waiting",
				i+1, o.pending.Load(), o.window.Load(), o.waiting.Load())
		}
	}
}
