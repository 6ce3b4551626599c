package natslink

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestSendAgainBeforeReconnect: what was in flight to the stream as the
// connection went is put back in the outage buffer (jsSendAgain) as
// the link hears the connection go, on nats.go's ordered callbacks,
// ahead of the reconnection: once NATS is back, the stream stores it
// before what is published since. nats.go reports those messages failed
// (jsNotAcked, ErrDisconnected) from a goroutine of its own, not
// ordered with its callbacks; here the report comes late, once the
// events published after the reconnection are stored. Before, only that
// report put them back: the stream stored them after the newer events,
// which receivers then delivered ahead of them. Nor does the late
// report put back what is in flight then (published on the new
// connection, its acknowledgements held back here): before, it did,
// and the stream stored those events twice.
func TestSendAgainBeforeReconnect(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	p := newStallProxy(t, ns.Addr().String())
	log := &syncBuffer{}
	late := make(chan struct{})
	var reported atomic.Int64 // ErrDisconnected reports, held until late
	node := uuid.New()
	// CatchUp: the link makes the stream, and no consumer (see
	// TestSendAgainKeepsOrder).
	cfg := Config{URL: p.url(), Node: node, JetStream: true, Durable: "late", CatchUp: time.Hour, Buffer: 1 << 20,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(log, nil))}
	cfg.notAcked = func(_ *nats.Msg, err error) {
		if errors.Is(err, nats.ErrDisconnected) {
			reported.Add(1)
			<-late
		}
	}
	l, err := Open(cfg, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	report := sync.OnceFunc(func() { close(late) })
	t.Cleanup(report) // before Close: nats.go's goroutine waits in the hook
	waitForStream(t, ns)
	publish := func(names ...string) {
		t.Helper()
		for _, name := range names {
			ev := &Event{Channel: "A", Event: name, ID: uuid.New(), Origin: node, Sender: node, Data: []byte{0xc0}}
			if err := l.Publish(ev, uuid.Nil); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The path stops: what the link publishes now stays in flight. The
	// proxy's read under way still goes through: a ping takes it.
	p.pause()
	l.nc.FlushTimeout(time.Second)
	publish("m1", "m2", "m3")
	time.Sleep(100 * time.Millisecond)
	if n := l.jsOut.pending.Load(); n != 3 {
		t.Fatalf("%d messages wait for an acknowledgement, want the 3 published: the test proves nothing", n)
	}
	p.resume() // cuts the connection: m1 to m3 are lost with it
	waitFor(t, "nats.go to report the messages in flight failed", func() bool { return reported.Load() > 0 })
	waitFor(t, "the link to hear the reconnection", func() bool { return strings.Contains(log.String(), "reconnected to NATS") })
	// What the link publishes now stays in flight too, as its
	// acknowledgements are held back (a ping takes the proxy's read
	// under way), but reaches the stream.
	p.holdAnswers()
	l.nc.FlushTimeout(time.Second)
	publish("n1", "n2", "n3")

	js := jetStreamClient(t, ns.ClientURL())
	stream, err := js.Stream(context.Background(), StreamName("netcluster", ""))
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		info, err := stream.Info(context.Background())
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	waitFor(t, "the events published since the reconnection to be stored", func() bool { return stored() >= 3 })
	report()
	// The third report has come once the link has heard the first two.
	waitFor(t, "the late reports", func() bool { return reported.Load() >= 3 })
	p.answer()
	if got, want := storedEvents(t, ns.ClientURL(), 6), []string{"m1", "m2", "m3", "n1", "n2", "n3"}; !slices.Equal(got, want) {
		t.Errorf("the stream holds %v, want %v: what was in flight as the connection went first", got, want)
	}
	waitFor(t, "every message acknowledged, the buffer empty", func() bool {
		return l.jsOut.pending.Load() == 0 && l.keptBytes() == 0
	})
	if n := stored(); n != 6 {
		t.Errorf("the stream holds %d messages, want 6: the late report sent again what was published since", n)
	}
	if st := l.Stats(); st.EventsOut != 6 || st.Dropped != 0 {
		t.Errorf("%d events sent, %d dropped; want 6 and 0", st.EventsOut, st.Dropped)
	}
}

// TestLostAsItClosesCounted: a connection lost while the link closes,
// once it has counted its outage buffer for the last time, puts back
// what was in flight to the stream (jsSendAgain), which nothing would
// send any more. Those events are counted dropped and logged. Before,
// they went into the buffer after it was counted, and were lost with
// it, counted nowhere.
func TestLostAsItClosesCounted(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	p := newStallProxy(t, ns.Addr().String())
	log := &syncBuffer{}
	node := uuid.New()
	cut := make(chan struct{})
	cfg := Config{URL: p.url(), Node: node, JetStream: true, Durable: "closing", CatchUp: time.Hour, Buffer: 1 << 20,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(log, nil))}
	var l *Link
	cfg.lastCounted = func() {
		// The path is cut now: the link hears the connection go, and
		// puts back what was in flight.
		p.resume()
		waitFor(t, "the messages in flight to be put back", func() bool {
			l.jsOut.mu.Lock()
			defer l.jsOut.mu.Unlock()
			return len(l.jsOut.inflight) == 0
		})
		close(cut)
	}
	l, err := Open(cfg, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	waitForStream(t, ns)
	p.pause()
	l.nc.FlushTimeout(time.Second)
	for _, name := range []string{"m1", "m2", "m3"} {
		ev := &Event{Channel: "A", Event: name, ID: uuid.New(), Origin: node, Sender: node, Data: []byte{0xc0}}
		if err := l.Publish(ev, uuid.Nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the 3 messages to wait for their acknowledgement", func() bool { return l.jsOut.pending.Load() == 3 })
	l.Close()
	select {
	case <-cut:
	default:
		t.Fatal("Close did not reach the last count of its buffer")
	}
	if st := l.Stats(); st.Dropped != 3 {
		t.Errorf("%d events counted dropped, want the 3 lost with the connection as the link closed\n%s", st.Dropped, log)
	}
	if !strings.Contains(log.String(), "they are dropped") {
		t.Errorf("the loss was not logged:\n%s", log)
	}
}
