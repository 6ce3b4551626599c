package channel_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// retaining is a channel configuration that keeps its recent events.
func retaining(bytes int) channel.Config {
	return channel.Config{Name: "A", Node: uuid.New(), Retain: channel.Retain{Bytes: bytes, Age: time.Minute}}
}

// ints records the integers of the "n" events a client hears, and the
// client's disconnects and missed-event reports.
type ints struct {
	mu          sync.Mutex
	seen        []int
	disconnects atomic.Int32
	missed      atomic.Uint64
	missedErrs  atomic.Int32
}

func (r *ints) options() []bus.Option {
	return []bus.Option{
		bus.OnDisconnect(func(error) { r.disconnects.Add(1) }),
		bus.OnMissed(func(n uint64) { r.missed.Add(n) }),
		bus.ErrorHandler(func(err error) {
			if errors.Is(err, bus.ErrMissed) {
				r.missedErrs.Add(1)
			}
		}),
		bus.ReconnectBackoff(5*time.Millisecond, 20*time.Millisecond),
	}
}

func (r *ints) listen(t *testing.T, c *bus.Client) {
	t.Helper()
	if _, err := c.On("n", func(m bus.Message) {
		var i int
		if err := m.Decode(&i); err != nil {
			t.Error(err)
		}
		r.mu.Lock()
		r.seen = append(r.seen, i)
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
}

func (r *ints) values() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *ints) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func dialWith(t *testing.T, ch *channel.Channel, name string, opts ...bus.Option) *bus.Client {
	t.Helper()
	c, err := bus.Dial(context.Background(), ch.Name(), append([]bus.Option{bus.Socket(ch.Path()), bus.Name(name)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// killClient breaks the connection of the client with this id on the
// server's side, dropping what is queued for it.
func killClient(t *testing.T, ch *channel.Channel, id uuid.UUID) {
	t.Helper()
	c := ch.Client(id)
	if c == nil {
		t.Fatalf("no client %v", id)
	}
	c.Kill()
}

// checkExactly fails unless got is 0..n-1, each once, in order.
func checkExactly(t *testing.T, got []int, n int) {
	t.Helper()
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d is %d (after %v): lost, doubled or out of order", i, v, got[max(0, i-3):i])
		}
	}
	if len(got) != n {
		t.Fatalf("heard %d events, want %d", len(got), n)
	}
}

// TestResumeAfterKill breaks a subscriber's connection, on the server's
// side, three times while a publisher emits without pause: the
// subscriber resumes each time from its last event and hears every
// event exactly once, in order, though what was queued for it when its
// connection broke was dropped.
func TestResumeAfterKill(t *testing.T) {
	ch := listen(t, retaining(64<<20))
	var rec ints
	sub := dialWith(t, ch, "sub", rec.options()...)
	rec.listen(t, sub)
	pub := dialWith(t, ch, "pub")

	const n = 6000
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := range n {
			if err := pub.Emit("n", i); err != nil {
				t.Errorf("emit %d: %v", i, err)
				return
			}
			if i%64 == 0 {
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	const kills = 3
	for k := 1; k <= kills; k++ {
		at := rec.count()
		routertest.WaitFor(t, "events before the kill", func() bool { return rec.count() >= at+200 || rec.count() >= n*k/(kills+1) })
		id := sub.ID()
		killClient(t, ch, id)
		routertest.WaitFor(t, "the subscriber to reconnect", func() bool { return sub.Connected() && sub.ID() != id })
	}
	<-emitted
	routertest.WaitFor(t, "every event", func() bool { return rec.count() >= n })
	checkExactly(t, rec.values(), n)
	if d := rec.disconnects.Load(); d != kills {
		t.Errorf("%d disconnects, want %d", d, kills)
	}
	if sub.Missed() != 0 || rec.missed.Load() != 0 {
		t.Errorf("missed %d (callback %d), want 0", sub.Missed(), rec.missed.Load())
	}
	if st := ch.Stats(); st.Replayed == 0 || st.Missed != 0 {
		t.Errorf("stats %+v: want events replayed, none missed", st)
	}
}

// TestResumeGap keeps a subscriber away while more is emitted than the
// ring holds: once back, it hears the newest events, in order, and is
// told how many it missed, by OnMissed, the ErrorHandler and Missed;
// the server counts them too. Heard and missed add up to what was
// emitted.
func TestResumeGap(t *testing.T) {
	ch := listen(t, retaining(16<<10))
	var rec ints
	// A backoff long enough for the publisher to overrun the ring.
	opts := append(rec.options(), bus.ReconnectBackoff(time.Second, time.Second))
	sub := dialWith(t, ch, "sub", opts...)
	rec.listen(t, sub)
	pub := dialWith(t, ch, "pub")
	emit := func(from, to int) {
		for i := from; i < to; i++ {
			if err := pub.Emit("n", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	emit(0, 10)
	routertest.WaitFor(t, "the first events", func() bool { return rec.count() == 10 })
	id := sub.ID()
	killClient(t, ch, id)
	routertest.WaitFor(t, "the subscriber to notice", func() bool { return rec.disconnects.Load() == 1 })
	const n = 1000
	emit(10, n)
	if err := pub.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the server to read every event", func() bool { return ch.Stats().EventsIn == n })
	routertest.WaitFor(t, "the subscriber to come back and hear of the gap", func() bool {
		return sub.Connected() && rec.missed.Load() > 0 && rec.missedErrs.Load() == 1
	})
	got := rec.values()
	routertest.WaitFor(t, "the retained events", func() bool {
		got = rec.values()
		return len(got) > 10 && got[len(got)-1] == n-1
	})
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("%d after %d: doubled or out of order", got[i], got[i-1])
		}
	}
	missed := rec.missed.Load()
	if uint64(len(got))+missed != n || sub.Missed() != missed {
		t.Errorf("heard %d and missed %d (Missed() %d) of %d", len(got), missed, sub.Missed(), n)
	}
	if got[10] != 10+int(missed) {
		t.Errorf("first event after the gap %d, want %d", got[10], 10+missed)
	}
	if st := ch.Stats(); st.Missed != missed || st.Evicted == 0 || st.RetainedBytes > 16<<10 {
		t.Errorf("stats %+v: want %d missed, events evicted, at most 16 KiB retained", st, missed)
	}
}

// TestFirstDialAndSince: a first Dial hears only what is emitted after
// it, as an EventEmitter would; with Since it first hears the history
// it asks for, in order; a client never hears its own events from the
// ring.
func TestFirstDialAndSince(t *testing.T) {
	ch := listen(t, retaining(1<<20))
	pub := dialWith(t, ch, "pub")
	var own ints
	own.listen(t, pub)
	for i := range 5 {
		if err := pub.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the events retained", func() bool { return ch.Stats().Retained == 5 })

	var plain, history ints
	c1 := dialWith(t, ch, "plain")
	plain.listen(t, c1)
	c2 := dialWith(t, ch, "history", bus.Since(time.Minute))
	history.listen(t, c2)
	if err := pub.Emit("n", 5); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the live event", func() bool { return plain.count() == 1 && history.count() == 6 })
	if got := plain.values(); !slices.Equal(got, []int{5}) {
		t.Errorf("first Dial heard %v, want only the live event 5", got)
	}
	checkExactly(t, history.values(), 6)

	// The publisher's connection breaks; it resumes, and hears nothing
	// of its own from the ring: its listener heard each once, locally.
	id := pub.ID()
	killClient(t, ch, id)
	routertest.WaitFor(t, "the publisher to reconnect", func() bool { return pub.Connected() && pub.ID() != id })
	if err := c1.Emit("n", 6); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the publisher to hear 6", func() bool { return own.count() >= 7 })
	checkExactly(t, own.values(), 7)
}

// TestRetainAge: events leave the ring after retainage, counted as
// evicted; a client that was away longer is told it missed them; and
// SetRetain with nothing to keep empties the ring.
func TestRetainAge(t *testing.T) {
	cfg := retaining(1 << 20)
	cfg.Retain.Age = 200 * time.Millisecond
	ch := listen(t, cfg)
	var rec ints
	sub := dialWith(t, ch, "sub", append(rec.options(), bus.ReconnectBackoff(time.Second, time.Second))...)
	rec.listen(t, sub)
	pub := dialWith(t, ch, "pub")
	if err := pub.Emit("n", 0); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the first event", func() bool { return rec.count() == 1 })
	killClient(t, ch, sub.ID())
	routertest.WaitFor(t, "the subscriber to notice", func() bool { return rec.disconnects.Load() == 1 })
	for i := 1; i <= 5; i++ {
		if err := pub.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the events to age out of the ring", func() bool {
		st := ch.Stats()
		return st.EventsIn == 6 && st.Retained == 0 && st.Evicted == 6 && st.RetainedBytes == 0
	})
	routertest.WaitFor(t, "the subscriber to come back", func() bool { return sub.Connected() && rec.missed.Load() == 5 })
	if got := rec.values(); !slices.Equal(got, []int{0}) {
		t.Errorf("heard %v, want only 0", got)
	}

	ch.SetRetain(channel.Retain{Bytes: 1 << 20, Age: time.Minute})
	if err := pub.Emit("n", 6); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the event retained", func() bool { return ch.Stats().Retained == 1 })
	ch.SetRetain(channel.Retain{})
	if st := ch.Stats(); st.Retained != 0 || st.RetainedBytes != 0 {
		t.Errorf("stats %+v after SetRetain(Retain{}), want an empty ring", st)
	}
}

// TestOlderClientUnaffected: a client of protocol version 2 gets a
// Welcome of version 2 without the resume fields, and at a stop no
// Drain, only the shutdown error frame, as before.
func TestOlderClientUnaffected(t *testing.T) {
	ch := listen(t, retaining(1<<20))
	nc, err := net.Dial("unix", ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	hello := wire.Hello{Version: 2, ClientID: uuid.New(), Name: "v2"}
	if _, err := nc.Write(wire.AppendHello(nil, &hello)); err != nil {
		t.Fatal(err)
	}
	fr := wire.NewFrameReader(bufio.NewReader(nc), 1<<20)
	frame, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if frame[wire.HeaderLen] != 0x96 {
		t.Errorf("welcome body starts % x, want a fixarray of 6 elements (no resume fields)", frame[wire.HeaderLen:wire.HeaderLen+2])
	}
	w, err := wire.DecodeWelcome(frame[wire.HeaderLen:])
	if err != nil || w.Version != 2 || w.Epoch != ([16]byte{}) {
		t.Fatalf("welcome %+v, %v; want version 2 without an epoch", w, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ch.Shutdown(ctx, wire.CodeShutdown, "stopping")
	}()
	frame, err = fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := wire.TypeOf(frame[wire.HeaderLen:]); typ != wire.FrameError {
		t.Errorf("a version 2 client got a %v frame at the stop, want the error frame", typ)
	}
	<-done
}

// TestResumeAfterReply: a reply is not retained, so it is no place to
// resume from: a client whose last event was a reply resumes after the
// last event it heard before it, without doubles.
func TestResumeAfterReply(t *testing.T) {
	cfg := retaining(1 << 20)
	var ch *channel.Channel
	cfg.Handler = func(from *channel.Conn, ev *channel.Event) {
		if to := uuid.UUID(ev.Header.To); to != uuid.Nil {
			if c := ch.Client(to); c != nil {
				c.SendEvent(ev)
			}
			return
		}
		ch.SendEvent(ev, from)
	}
	ch = listen(t, cfg)
	var rec ints
	asker := dialWith(t, ch, "asker", rec.options()...)
	rec.listen(t, asker)
	answerer := dialWith(t, ch, "answerer")
	answerer.On("ask", func(m bus.Message) { answerer.Reply(m, "yes") })
	for i := range 3 {
		if err := answerer.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the first events", func() bool { return rec.count() == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := asker.Request(ctx, "ask", nil); err != nil {
		t.Fatal(err)
	}
	id := asker.ID()
	killClient(t, ch, id)
	routertest.WaitFor(t, "the asker to reconnect", func() bool { return asker.Connected() && asker.ID() != id })
	if err := answerer.Emit("n", 3); err != nil {
		t.Fatal(err)
	}
	// A replay comes before anything live, so doubles would show among
	// the first four.
	routertest.WaitFor(t, "the event after the reconnect", func() bool { return rec.count() >= 4 })
	checkExactly(t, rec.values(), 4)
	if asker.Missed() != 0 {
		t.Errorf("missed %d", asker.Missed())
	}
}

// TestResumeEvictedWhileHeld checks what a client that resumes is told
// when the ring evicted, during its handshake, events that came after
// its connection was accepted: those are in its queue, so heard plus
// missed is what was emitted after its cursor, and the Welcome's From
// is its cursor, the event right before the first it is sent. It failed
// before: the Welcome counted the evicted events as missed though the
// client then heard them, and its From was the newest of them.
func TestResumeEvictedWhileHeld(t *testing.T) {
	node := uuid.New()
	cfg := retaining(4 << 10) // a few dozen small events
	cfg.Node = node
	ch := listen(t, cfg)
	pub := rawHelloTo(t, ch, wire.Hello{})
	sub := rawHelloTo(t, ch, wire.Hello{})
	if sub.w.Epoch == [16]byte{} {
		t.Fatal("the Welcome has no epoch: the channel retains nothing")
	}
	f, cursor := pub.event(node, "A", "n", []byte{0x01})
	pub.nc.Write(f)
	if ty, _, err := sub.next(5 * time.Second); err != nil || ty != wire.FrameEvent {
		t.Fatalf("the first event: frame %v, %v", ty, err)
	}
	// The resuming connection is accepted, and holds its handshake at
	// the first byte of its Hello, so that what comes now is held in its
	// queue.
	nc := rawDial(t, ch)
	hello := wire.Hello{Version: wire.ProtocolVersion, ClientID: uuid.New(), Name: "resumer", Resume: wire.Cursor{Epoch: sub.w.Epoch, After: cursor}}
	nc.Write(wire.AppendHello(nil, &hello)[:1])
	routertest.WaitFor(t, "the connection to be accepted", func() bool { return ch.Stats().Undecided == 1 })
	const n = 200 // far more than the ring holds
	for i := range n {
		f, _ := pub.event(node, "A", "n", []byte{byte(i & 0x7f)})
		pub.nc.Write(f)
	}
	routertest.WaitFor(t, "the channel to read every event", func() bool { return ch.Stats().EventsIn == n+1 })
	if st := ch.Stats(); st.Evicted < n/2 {
		t.Fatalf("%d events evicted; the test needs most of them to be", st.Evicted)
	}
	b := rawHelloOn(t, nc, hello, 1)
	heard, _ := b.readEvents(time.Second)
	t.Logf("heard %d, missed %d, emitted after the cursor %d", heard, b.w.Missed, n)
	if b.w.From != cursor {
		t.Errorf("the Welcome's From is %v, not the cursor %v, the event right before the first it is sent", uuid.UUID(b.w.From), uuid.UUID(cursor))
	}
	if uint64(heard)+b.w.Missed != n {
		t.Fatalf("heard %d + missed %d != %d emitted after the cursor", heard, b.w.Missed, n)
	}
}

// TestResumeEvictedPastTombs: as TestResumeEvictedWhileHeld, with more
// events evicted while the handshake waits than the ring remembers the
// ids of (4096): From is still the cursor, the event before those the
// client's queue got, and the client heard every one of them with none
// missed. (A first version of the fix took From from the ring's memory,
// and said the nil id, the start of the ring, here.)
func TestResumeEvictedPastTombs(t *testing.T) {
	node := uuid.New()
	cfg := retaining(4 << 10)
	cfg.Node = node
	ch := listen(t, cfg)
	pub := rawHelloTo(t, ch, wire.Hello{})
	sub := rawHelloTo(t, ch, wire.Hello{})
	f, cursor := pub.event(node, "A", "n", []byte{0x01})
	pub.nc.Write(f)
	if ty, _, err := sub.next(5 * time.Second); err != nil || ty != wire.FrameEvent {
		t.Fatalf("the first event: frame %v, %v", ty, err)
	}
	sub.nc.Close()
	nc := rawDial(t, ch)
	hello := wire.Hello{Version: wire.ProtocolVersion, ClientID: uuid.New(), Name: "resumer", Resume: wire.Cursor{Epoch: sub.w.Epoch, After: cursor}}
	nc.Write(wire.AppendHello(nil, &hello)[:1])
	routertest.WaitFor(t, "the connection to be accepted", func() bool { return ch.Stats().Undecided == 1 })
	const n = 6000
	for i := range n {
		f, _ := pub.event(node, "A", "n", []byte{byte(i & 0x7f)})
		pub.nc.Write(f)
	}
	routertest.WaitFor(t, "the channel to read every event", func() bool { return ch.Stats().EventsIn == n+1 })
	b := rawHelloOn(t, nc, hello, 1)
	heard, _ := b.readEvents(time.Second)
	if b.w.From != cursor {
		t.Errorf("From is %v, want the cursor %v", uuid.UUID(b.w.From), uuid.UUID(cursor))
	}
	if heard != n || b.w.Missed != 0 {
		t.Errorf("heard %d, missed %d; want %d and 0", heard, b.w.Missed, n)
	}
}
