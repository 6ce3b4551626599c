package natslink

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/seeds"
	"github.com/netcluster/netcluster/internal/wire"
)

// flowPair is a sender with flow control and a receiver whose delivery
// stops at the stopAt-th event until release is closed; the receiver's
// subscriptions hold 64 messages or 128 KiB at most.
type flowPair struct {
	sender, receiver *Link
	node             uuid.UUID // the sender's
	log              *syncBuffer
	got              atomic.Int64
	release          chan struct{}
	pack             bool
}

func newFlowPair(t *testing.T, pack bool, peerTimeout time.Duration, stopAt int64) *flowPair {
	return newFlowPairDelay(t, pack, peerTimeout, stopAt, 0)
}

// newFlowPairDelay is newFlowPair with a receiver that spends delay on
// each event.
func newFlowPairDelay(t *testing.T, pack bool, peerTimeout time.Duration, stopAt int64, delay time.Duration) *flowPair {
	ns := startNATS(t)
	p := &flowPair{node: uuid.New(), log: &syncBuffer{}, release: make(chan struct{}), pack: pack}
	base := Config{URL: ns.ClientURL(), Pack: pack, Heartbeat: 50 * time.Millisecond, PeerTimeout: peerTimeout}
	scfg := base
	scfg.Node, scfg.FlowControl, scfg.Logger = p.node, true, slog.New(slog.NewTextHandler(p.log, nil))
	var err error
	if p.sender, err = Open(scfg, func(*Event) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.sender.Close)
	rcfg := base
	rcfg.Node, rcfg.PendingMsgs, rcfg.PendingBytes, rcfg.Logger = uuid.New(), 64, 128<<10, slog.New(slog.DiscardHandler)
	deliver := func(*Event) {
		if p.got.Add(1) == stopAt {
			<-p.release
		}
		time.Sleep(delay)
	}
	rcfg.DeliverRun = func(evs []Event) {
		for range evs {
			deliver(nil)
		}
	}
	if p.receiver, err = Open(rcfg, deliver); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.receiver.Close)
	t.Cleanup(func() {
		select {
		case <-p.release:
		default:
			close(p.release)
		}
	})
	p.receiver.SetChannels([]string{"A"})
	// Until the receiver has reported, nothing holds the sender back.
	for i := 0; p.sender.Stats().FlowReceivers == 0; i++ {
		if i == 10_000 {
			t.Fatal("the receiver never reported")
		}
		if err := p.publish(i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	return p
}

// publish sends event i of channel A, in the link's format.
func (p *flowPair) publish(i int) error {
	data := []byte{0xcd, byte(i >> 8), byte(i)} // a msgpack uint16
	if p.pack {
		return p.sender.PublishFrame([]byte("A"), wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: p.node,
			Sender: p.node, Channel: "A", Event: "e", Data: data}))
	}
	return p.sender.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: p.node, Sender: p.node, Data: data}, uuid.Nil)
}

// publishAll publishes n events (n < 0: until an error) on a goroutine
// of its own; the channel it returns gets the error it stopped at, or
// nil.
func (p *flowPair) publishAll(n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := 0; n < 0 || i < n; i++ {
			if err := p.publish(i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// waitPublished waits for publishAll to end, and fails unless it did
// without error within a minute.
func (p *flowPair) waitPublished(t *testing.T, done <-chan error, when string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the publisher is still held back a minute%s: %+v", when, p.sender.Stats())
	}
}

// TestFlowReceiverStops: a receiver that stops taking events holds its
// sender back for PeerTimeout, counted from when the sender began to
// wait; then it leaves flow control, logged and counted, and the sender
// goes on. Once it takes events again and has caught up, it rejoins.
// Without the exclusion the publisher would wait for good.
func TestFlowReceiverStops(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack bool) { testFlowReceiverStops(t, pack) })
}

func testFlowReceiverStops(t *testing.T, pack bool) {
	const peerTimeout = 400 * time.Millisecond
	p := newFlowPair(t, pack, peerTimeout, 20_000)
	p.waitPublished(t, p.publishAll(40_000), "")
	st := p.sender.Stats()
	if st.FlowExcluded == 0 || st.FlowHeld == 0 || st.FlowHeldMs < uint64(peerTimeout/time.Millisecond) {
		t.Errorf("flow_excluded %d, flow_held %d, flow_held_ms %d; want some, some, and at least %v",
			st.FlowExcluded, st.FlowHeld, st.FlowHeldMs, peerTimeout)
	}
	// A receiver starved of CPU for peertimeout before it stopped may
	// have left and rejoined already; the stopped one stays out.
	log := p.log.String()
	left, rejoined := strings.Count(log, "a receiver left flow control"), strings.Count(log, "a receiver rejoined flow control")
	if uint64(left) != st.FlowExcluded || left != rejoined+1 {
		t.Errorf("the log says the receiver left %d times and rejoined %d times, flow_excluded %d; want it out once more than back, as counted:\n%s",
			left, rejoined, st.FlowExcluded, log)
	}
	// It has lost what came past its pending limits: it catches up
	// with the next events, rejoins, logged once more, and counts as a
	// receiver again. (An earlier rejoin is in the log already; under
	// load the receiver may leave and rejoin again before the sender's
	// counters are read, so the two are awaited together.)
	close(p.release)
	waitFor(t, "the receiver to rejoin, logged and counted in flow_receivers", func() bool {
		if err := p.publish(0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		return strings.Count(p.log.String(), "a receiver rejoined flow control") > rejoined && p.sender.Stats().FlowReceivers == 1
	})
}

// TestFlowCloseWhileHeld: Close does not wait for a receiver that holds
// a publisher back; the publisher's next event is refused.
func TestFlowCloseWhileHeld(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack bool) {
		p := newFlowPair(t, pack, time.Hour, 20_000)
		done := p.publishAll(-1)
		waitFor(t, "the publisher to be held back", func() bool { return p.sender.Stats().FlowHeld > 0 })
		closed := make(chan struct{})
		go func() {
			p.sender.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("Close waits for the receiver")
		}
		if err := <-done; err != ErrClosed {
			t.Errorf("the publisher's last error: %v, want ErrClosed", err)
		}
	})
}

// TestFlowReceiverLeaves: a receiver that closes, or stops taking the
// channel, while it holds a sender back says so, and the sender stops
// waiting for it at once: with a PeerTimeout of an hour, it would
// otherwise wait that long.
func TestFlowReceiverLeaves(t *testing.T) {
	leave := map[string]func(*Link){
		"close":       func(l *Link) { l.Close() },
		"unsubscribe": func(l *Link) { l.SetChannels(nil) },
	}
	for how, f := range leave {
		for _, pack := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, pack %v", how, pack), func(t *testing.T) {
				p := newFlowPairDelay(t, pack, time.Hour, 0, 100*time.Microsecond)
				done := p.publishAll(20_000)
				waitFor(t, "the publisher to be held back", func() bool { return p.sender.Stats().FlowHeld > 0 })
				f(p.receiver)
				p.waitPublished(t, done, " after the receiver left")
				if st := p.sender.Stats(); st.FlowExcluded != 0 || st.FlowReceivers != 0 {
					t.Errorf("flow_excluded %d, flow_receivers %d; want 0 and 0", st.FlowExcluded, st.FlowReceivers)
				}
			})
		}
	}
}

// FuzzReport feeds nextReport report bodies (seeds in
// testdata/fuzz/report): it never panics, and a line it reads is written
// back by appendReport as a line it reads the same, so that what a
// sender reads is what a receiver meant.
func FuzzReport(f *testing.F) {
	for _, b := range seeds.Load(f, "../testdata/fuzz/report") {
		f.Add(b.Data)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for len(body) > 0 {
			r, rest, ok := nextReport(body)
			if !ok {
				return
			}
			if len(rest) >= len(body) {
				t.Fatalf("nextReport(%q) read nothing", body)
			}
			if r.window == 0 || strings.ContainsAny(r.epoch, " \n") || !ValidSubject(r.subject) {
				t.Fatalf("nextReport(%q) read %+v", body, r)
			}
			again, after, ok := nextReport(appendReport(nil, r))
			if !ok || again != r || len(after) != 0 {
				t.Fatalf("%+v written and read again: %+v, %v, %q left", r, again, ok, after)
			}
			body = rest
		}
	})
}

// TestReport: report lines as a receiver writes them are read back; the
// seeds that are not report lines are refused.
func TestReport(t *testing.T) {
	lines := []reportLine{{"00c0ffee00c0ffee", 41, 250000, "netcluster.default.A"}, {"e", 0, 1, "p.k.a.b"}}
	var body []byte
	for _, r := range lines {
		body = appendReport(body, r)
	}
	for i := 0; len(body) > 0; i++ {
		r, rest, ok := nextReport(body)
		if !ok || r != lines[i] {
			t.Fatalf("line %d: %+v, %v; want %+v", i, r, ok, lines[i])
		}
		body = rest
	}
	for _, bad := range []string{"e 1 0 a.b.c\n", "e -1 5 a.b.c\n", "e 1 5 a..c\n", "e 1 5\n", " 1 5 a\n", "e 1 5 a.b.c d\n", "e x 5 a\n"} {
		if r, _, ok := nextReport([]byte(bad)); ok {
			t.Errorf("%q read as %+v", bad, r)
		}
	}
}

// TestFlowBadReports: reports from NATS that are not reports (no node,
// a line that does not read) are counted malformed and change nothing;
// one from another epoch, or on a subject the sender never sent on, is
// ignored; a forged one with a window of 1 holds the sender back only
// until the sender leaves it out after PeerTimeout.
func TestFlowBadReports(t *testing.T) {
	ns := startNATS(t)
	node := uuid.New()
	sender, err := Open(Config{URL: ns.ClientURL(), Node: node, FlowControl: true, Heartbeat: 50 * time.Millisecond,
		PeerTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	publish := func(i int) {
		t.Helper()
		if err := sender.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: []byte{0xc0}}, uuid.Nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(0) // the subject is known to flow control from now on
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	report := func(nodeID, body string) {
		t.Helper()
		m := nats.NewMsg(FlowSubject("netcluster", "", node))
		if nodeID != "" {
			m.Header.Set(headerNode, nodeID)
		}
		m.Data = []byte(body)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	subject := Subject("netcluster", "", "A")
	forger := uuid.New().String()
	// The sender's subscription to its reports has reached NATS once
	// its connection is flushed: from then on every report sent comes
	// to it, and none is lost. A probe, counted malformed, shows that
	// it hears them; once it is counted, the counts are where the
	// reports below count from.
	waitFor(t, "the sender connected", sender.Connected)
	if err := sender.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	base := sender.Stats()
	report("", "probe\n")
	waitFor(t, "the sender to hear the probe", func() bool { return sender.Stats().Malformed == base.Malformed+1 })
	base = sender.Stats()
	report("", sender.epoch+" 1 1 "+subject+"\n")           // no node
	report("not-a-uuid", sender.epoch+" 1 1 "+subject+"\n") // a bad node
	report(forger, sender.epoch+" x 1 "+subject+"\n")       // a line that does not read
	report(forger, "0000000000000000 1 1 "+subject+"\n")    // another epoch
	report(forger, sender.epoch+" 1 1 netcluster.default.B\n")
	// Five messages: two malformed, one read and malformed, two read.
	waitFor(t, "the reports", func() bool {
		st := sender.Stats()
		return st.ReportsIn-base.ReportsIn+st.Malformed-base.Malformed >= 6
	})
	if st := sender.Stats(); st.Malformed-base.Malformed != 3 || st.ReportsIn-base.ReportsIn != 3 || st.FlowReceivers != 0 {
		t.Fatalf("malformed %d, reports_in %d, flow_receivers %d; want 3, 3 and 0",
			st.Malformed-base.Malformed, st.ReportsIn-base.ReportsIn, st.FlowReceivers)
	}
	// A forged report that holds the sender back: left out.
	report(forger, fmt.Sprintf("%s 1 1 %s\n", sender.epoch, subject))
	waitFor(t, "the forged receiver", func() bool { return sender.Stats().FlowReceivers == 1 })
	for i := range 3 {
		publish(i)
	}
	if st := sender.Stats(); st.FlowExcluded != 1 || st.FlowHeld == 0 {
		t.Errorf("flow_excluded %d, flow_held %d; want 1 and some", st.FlowExcluded, st.FlowHeld)
	}
}
