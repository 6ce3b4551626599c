package natslink

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The tests here publish numbered events of one sender straight to the
// stream, out of order and with copies, as a sender's retries and
// NATS's redeliveries bring them, and check what a link with JetStream
// delivers: each event once, in order where it can wait, and the events
// that never come counted.

// names collects the event names a link delivers.
type names struct {
	mu  sync.Mutex
	got []string
}

func (r *names) deliver(ev *Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ev.Event)
}

func (r *names) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// has reports whether name was delivered.
func (r *names) has(name string) bool { return slices.Contains(r.list(), name) }

// jsTest is a NATS server with JetStream, a link consuming channel A
// through the durable consumer durable (mods change its Config), and a
// publisher of numbered events of one sender (epoch "e") on A, straight
// to the stream.
type jsTest struct {
	ns      *server.Server
	js      jetstream.JetStream
	link    *Link
	got     *names
	origin  uuid.UUID
	durable string
}

func newJSTest(t *testing.T, durable string, mods ...func(*Config)) *jsTest {
	t.Helper()
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	j := &jsTest{ns: ns, js: jetStreamClient(t, ns.ClientURL()), got: &names{}, origin: uuid.New(), durable: durable}
	j.link = j.open(t, mods...)
	j.link.SetChannels([]string{"A"})
	waitFor(t, "the link's consumer", func() bool {
		_, err := j.js.Consumer(context.Background(), StreamName("netcluster", ""), durable)
		return err == nil
	})
	return j
}

// open opens a link on the test's durable, delivering to the test's
// names, closed when the test ends.
func (j *jsTest) open(t *testing.T, mods ...func(*Config)) *Link {
	t.Helper()
	cfg := Config{URL: j.ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: j.durable, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range mods {
		f(&cfg)
	}
	l, err := Open(cfg, j.got.deliver)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// publish stores the event name, numbered n, in the stream.
func (j *jsTest) publish(t *testing.T, name string, n int) {
	t.Helper()
	m := nats.NewMsg(Subject("netcluster", "", "A"))
	m.Header.Set(HeaderEvent, name)
	m.Header.Set(HeaderOrigin, j.origin.String())
	m.Header.Set(HeaderSeq, "e."+strconv.Itoa(n))
	m.Data = []byte{0xc0}
	if _, err := j.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// reorderWait sets jsReorderWait to d for the links the test opens
// from now on, until it ends. A test that checks what comes in order
// within the wait raises it (longReorderWait), so that a loaded machine
// publishes what fills the gap in time; one that checks what goes once
// the wait has passed keeps it short.
func reorderWait(t *testing.T, d time.Duration) {
	t.Helper()
	w := jsReorderWait
	jsReorderWait = d
	t.Cleanup(func() { jsReorderWait = w })
}

// longReorderWait is the wait of the tests whose gaps are filled: long
// enough for a loaded machine, shorter than waitFor, so that an event
// that did wait it out shows out of order rather than as a timeout.
const longReorderWait = 5 * time.Second

// TestJetStreamLateCopies: the events of a gap given up on come late,
// out of order, each with a copy: each is delivered once, whether it
// lies at an end of what is left of the gap or inside it.
func TestJetStreamLateCopies(t *testing.T) {
	j := newJSTest(t, "late")
	j.publish(t, "e1", 1)
	j.publish(t, "e2", 2)
	j.publish(t, "e7", 7) // 3 to 6 are given up on after jsReorderWait
	waitFor(t, "e7", func() bool { return j.got.has("e7") })
	for _, n := range []int{4, 3, 6, 5} {
		j.publish(t, "e"+strconv.Itoa(n), n)
		j.publish(t, "e"+strconv.Itoa(n)+" copy", n)
	}
	j.publish(t, "e8", 8)
	waitFor(t, "e8", func() bool { return j.got.has("e8") })
	want := []string{"e1", "e2", "e7", "e4", "e3", "e6", "e5", "e8"}
	if got := j.got.list(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v: each late event once", got, want)
	}
}

// TestJetStreamHeldCopy: a copy of a message held for a gap is dropped,
// and the gap, filled before jsReorderWait, is not counted missed. (The
// copy was counted as it came, ahead of the gap, as if the gap's events
// had never come: a sender that sent its messages again after a lost
// connection, whose first copies the stream had kept, had its receivers
// count events missed that they delivered.)
func TestJetStreamHeldCopy(t *testing.T) {
	reorderWait(t, longReorderWait) // e3 waits for the next three publishes
	j := newJSTest(t, "heldcopy")
	j.publish(t, "e1", 1)
	j.publish(t, "e3", 3)
	j.publish(t, "e3 copy", 3)
	j.publish(t, "e2", 2)
	j.publish(t, "e4", 4)
	waitFor(t, "e4", func() bool { return j.got.has("e4") })
	if got, want := j.got.list(), []string{"e1", "e2", "e3", "e4"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if missed := j.link.Stats().MissedIn; missed != 0 {
		t.Errorf("missed_in %d, want 0: every event came", missed)
	}
}

// TestJetStreamSwapGivesBackHeld: a link that a reload replaces (the
// next one consumes the same durable) while it holds a message for a
// gap gives that message back, undelivered, instead of delivering it
// past the gap: the next link gets it again after the missing one,
// which comes meanwhile, and nothing is counted missed.
func TestJetStreamSwapGivesBackHeld(t *testing.T) {
	// e3 must still be held as the link closes, and, given back, it may
	// come to the next link before e2: both wait within the wait.
	reorderWait(t, longReorderWait)
	j := newJSTest(t, "swapheld")
	// The next link is ready before e3 is held: it does not consume
	// until Release.
	next := j.open(t, func(c *Config) { c.Held = true })
	next.SetChannels([]string{"A"})
	j.publish(t, "e1", 1)
	waitFor(t, "e1", func() bool { return j.got.has("e1") })
	j.publish(t, "e3", 3) // held, waiting for e2
	waitFor(t, "e3 held", func() bool {
		o := &j.link.js.order
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.nHeld == 1
	})
	j.link.CloseInto(next)
	j.publish(t, "e2", 2)
	next.Release()
	waitFor(t, "e2 and e3", func() bool { return len(j.got.list()) >= 3 })
	time.Sleep(500 * time.Millisecond) // a copy, or a late count, would show by now
	if got, want := j.got.list(), []string{"e1", "e2", "e3"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if missed := j.link.Stats().MissedIn + next.Stats().MissedIn; missed != 0 {
		t.Errorf("missed_in %d across the swap, want 0", missed)
	}
}

// TestJetStreamSwapCountsLoss: an event that never comes, numbered just
// after a reload swapped the link, is counted missed once, by the link
// that took over.
func TestJetStreamSwapCountsLoss(t *testing.T) {
	j := newJSTest(t, "swaploss")
	j.publish(t, "e1", 1)
	j.publish(t, "e2", 2)
	waitFor(t, "e1 and e2", func() bool { return len(j.got.list()) == 2 })
	next := j.open(t, func(c *Config) { c.Held = true })
	next.SetChannels([]string{"A"})
	j.link.CloseInto(next)
	next.Release()
	j.publish(t, "e4", 4) // e3 never reaches the stream
	waitFor(t, "e4", func() bool { return j.got.has("e4") })
	waitFor(t, "e3 counted missed", func() bool { return next.Stats().MissedIn == 1 })
	if old := j.link.Stats().MissedIn; old != 0 {
		t.Errorf("the replaced link counted %d missed, want 0", old)
	}
}

// slowLine is a log handler that takes delay over the line msg: the
// link goes on only once it is written.
type slowLine struct {
	msg   string
	delay time.Duration
}

func (h slowLine) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		time.Sleep(h.delay)
	}
	return nil
}
func (h slowLine) Enabled(context.Context, slog.Level) bool { return true }
func (h slowLine) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h slowLine) WithGroup(string) slog.Handler            { return h }

// TestJetStreamHoldsAfterReset: after a lost connection the consumer is
// reset and consumes again; from its first message on, a message past a
// gap waits for the gap, even while the link is still busy starting to
// consume (here, a log line that takes 300 ms): e3, stored before e2,
// comes after it at once, not 30 s later (AckWait).
func TestJetStreamHoldsAfterReset(t *testing.T) {
	// e2 comes over 100 ms after e3 is held, and a published event
	// waits for the stream's ack: within the wait on a loaded machine.
	reorderWait(t, longReorderWait)
	j := newJSTest(t, "reset", func(c *Config) {
		c.ReconnectWait = 500 * time.Millisecond
		c.Logger = slog.New(slowLine{msg: "consuming from JetStream", delay: 300 * time.Millisecond})
	})
	l := j.link
	j.publish(t, "e1", 1)
	waitFor(t, "e1", func() bool { return j.got.has("e1") })
	cid, err := l.nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := j.ns.DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the link to see the connection lost", func() bool { return !l.Connected() })
	j.publish(t, "e3", 3) // stored before e2, as a sender's retry stores them
	waitFor(t, "the link back", l.Connected)
	time.Sleep(100 * time.Millisecond) // within the slow line
	j.publish(t, "e2", 2)
	waitFor(t, "e2 and e3", func() bool { return len(j.got.list()) >= 3 })
	if got, want := j.got.list(), []string{"e1", "e2", "e3"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// TestJetStreamManySenders: past the bound of the table of senders
// (maxEpochs), the link forgets those heard from least lately, not the
// live ones: a sender that goes on speaking among maxEpochs others that
// each spoke once (old epochs, say) still has its message past a gap
// wait for the gap, right after the table was full. (It forgot every
// sender with nothing held: the live one's next message started its
// numbering afresh and went at once, ahead of the one before it.)
func TestJetStreamManySenders(t *testing.T) {
	reorderWait(t, longReorderWait) // "last" waits for the next publish
	j := newJSTest(t, "many")
	other := func(epoch int) {
		m := nats.NewMsg(Subject("netcluster", "", "A"))
		m.Header.Set(HeaderEvent, "other")
		m.Header.Set(HeaderOrigin, uuid.NewString())
		m.Header.Set(HeaderSeq, "o"+strconv.Itoa(epoch)+".1")
		m.Data = []byte{0xc0}
		if _, err := j.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	n := 1
	const others = maxEpochs + 10 // the table fills at the last tens
	for epoch := range others {
		if epoch%100 == 0 {
			j.publish(t, "e"+strconv.Itoa(n), n)
			n++
		}
		other(epoch)
	}
	waitFor(t, "the others", func() bool { return len(j.got.list()) == n-1+others })
	j.publish(t, "last", n+1)
	j.publish(t, "before last", n)
	waitFor(t, "the last two", func() bool { return j.got.has("last") })
	got := j.got.list()
	if tail := got[len(got)-2:]; !slices.Equal(tail, []string{"before last", "last"}) {
		t.Errorf("the live sender's last two events came as %v: its numbering was forgotten", tail)
	}
}

// TestJetStreamCopiesBelowFirst: events numbered below the first one a
// link heard of their sender (sent before it started, and come late)
// are delivered, each once: their copies are dropped too.
func TestJetStreamCopiesBelowFirst(t *testing.T) {
	j := newJSTest(t, "below")
	j.publish(t, "e5", 5)
	waitFor(t, "e5", func() bool { return j.got.has("e5") })
	for _, n := range []int{3, 4, 1} {
		j.publish(t, "e"+strconv.Itoa(n), n)
		j.publish(t, "e"+strconv.Itoa(n)+" copy", n)
	}
	j.publish(t, "e6", 6)
	waitFor(t, "e6", func() bool { return j.got.has("e6") })
	if got, want := j.got.list(), []string{"e5", "e3", "e4", "e1", "e6"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}
