package bus_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

// callbacks counts a client's OnDisconnect and OnReconnect calls.
type callbacks struct {
	disconnects, reconnects atomic.Int32
	mu                      sync.Mutex
	reasons                 []error
}

func (cb *callbacks) options() []bus.Option {
	return []bus.Option{
		bus.OnDisconnect(func(err error) {
			cb.mu.Lock()
			cb.reasons = append(cb.reasons, err)
			cb.mu.Unlock()
			cb.disconnects.Add(1)
		}),
		bus.OnReconnect(func() { cb.reconnects.Add(1) }),
	}
}

// seqRecorder keeps the integers of the "seq" events a client hears.
type seqRecorder struct {
	mu   sync.Mutex
	seen []int
}

func recordSeq(t *testing.T, c *bus.Client) *seqRecorder {
	t.Helper()
	r := &seqRecorder{}
	if _, err := c.On("seq", func(m bus.Message) {
		var i int
		if err := m.Decode(&i); err != nil {
			t.Error(err)
			return
		}
		r.mu.Lock()
		r.seen = append(r.seen, i)
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *seqRecorder) values() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *seqRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// TestReconnectAcrossRestarts restarts the server twice, on the same
// sockets, under a publisher that emits numbered events without pause
// and a subscriber, both reconnecting clients. Delivery resumes after
// each restart; the subscriber gets every number at most once and in
// increasing order, never repeated or reordered; both clients hear of
// each disconnect and reconnect. (That none is missing either, within
// the server's ring of retained events, is TestResumeAcrossRestarts.)
func TestReconnectAcrossRestarts(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	const config = `"channels": {"A": {}}`
	ts := routertest.NewServerIn(t, dir, config)
	fast := bus.ReconnectBackoff(10*time.Millisecond, 100*time.Millisecond)
	var subCB, pubCB callbacks
	sub := ts.Dial(t, "A", append(subCB.options(), fast)...)
	rec := recordSeq(t, sub)
	ends := routertest.Record(t, sub, "end")
	pub := ts.Dial(t, "A", append(pubCB.options(), fast)...)

	stop := make(chan struct{})
	var emitted atomic.Int64
	var wg sync.WaitGroup
	emitSeq(t, pub, stop, &emitted, &wg)

	const restarts = 2
	for round := 1; round <= restarts; round++ {
		before := rec.count()
		routertest.WaitFor(t, "events before the restart", func() bool { return rec.count() >= before+200 })
		shutdown(t, ts)
		ts = routertest.NewServerIn(t, dir, config)
		routertest.WaitFor(t, "both clients to reconnect", func() bool {
			return subCB.reconnects.Load() == int32(round) && pubCB.reconnects.Load() == int32(round) &&
				sub.Connected() && pub.Connected()
		})
		after := rec.count()
		routertest.WaitFor(t, "events after the restart", func() bool { return rec.count() >= after+200 })
	}
	close(stop)
	wg.Wait()
	if err := pub.Emit("end", nil); err != nil {
		t.Fatal(err)
	}
	ends.WaitCount(t, "end", 1)

	got := rec.values()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("event %d after event %d: repeated or reordered", got[i], got[i-1])
		}
	}
	t.Logf("%d events emitted, %d delivered, %d lost across %d restarts", emitted.Load(), len(got), int(emitted.Load())-len(got), restarts)
	for name, cb := range map[string]*callbacks{"subscriber": &subCB, "publisher": &pubCB} {
		if d, r := cb.disconnects.Load(), cb.reconnects.Load(); d != restarts || r != restarts {
			t.Errorf("%s: %d disconnects and %d reconnects, want %d of each", name, d, r, restarts)
		}
	}
	// The subscriber reads the server's error frame; the publisher may
	// fail a write first, as the server stops reading before it closes.
	subCB.mu.Lock()
	for _, err := range subCB.reasons {
		if se := (*bus.ServerError)(nil); !errors.As(err, &se) || se.Code != bus.CodeShutdown {
			t.Errorf("subscriber: disconnected by %v, want the server's shutdown error frame", err)
		}
	}
	subCB.mu.Unlock()
	if sub.Err() != nil || pub.Err() != nil {
		t.Errorf("clients ended: %v, %v", sub.Err(), pub.Err())
	}
	// Nothing of the connections that ended is left running.
	sub.Close()
	pub.Close()
	shutdown(t, ts)
	goleak.VerifyNone(t)
}

// TestReconnectBuffer emits while the server is down: the events that
// fit in the reconnect buffer are kept and sent, in order, once the
// client is connected again; the first that does not fit fails with
// ErrBufferFull, which is also ErrDisconnected; a request fails at once.
// The new server serves only B at first, and A (which propagates to B)
// once B's client listens, so the client cannot reconnect before there
// is someone to hear it.
func TestReconnectBuffer(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerIn(t, dir, `"channels": {"A": {}}`)
	var cb callbacks
	pub := ts.Dial(t, "A", append(cb.options(), bus.ReconnectBackoff(10*time.Millisecond, 50*time.Millisecond), bus.ReconnectBuffer(4096))...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the client to see the server go", func() bool { return !pub.Connected() && cb.disconnects.Load() == 1 })

	var sent []int
	for i := 0; ; i++ {
		err := pub.Emit("seq", i)
		if err == nil {
			sent = append(sent, i)
			continue
		}
		if !errors.Is(err, bus.ErrBufferFull) || !errors.Is(err, bus.ErrDisconnected) {
			t.Fatalf("Emit %d while disconnected: %v, want ErrBufferFull", i, err)
		}
		break
	}
	if len(sent) < 50 || len(sent) > 4096/20 {
		t.Fatalf("%d events of about 50 bytes fit in a buffer of 4096 bytes", len(sent))
	}
	if _, err := pub.Request(ctx, "question", nil); !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("Request while disconnected: %v, want ErrDisconnected", err)
	}
	if cb.reconnects.Load() != 0 {
		t.Fatal("reconnected to no server")
	}

	ts2 := routertest.NewServerIn(t, dir, `"channels": {"B": {}}`)
	sub := ts2.Dial(t, "B")
	rec := recordSeq(t, sub)
	if _, err := ts2.Reload(ts2.ParseConfig(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the client to reconnect", func() bool { return cb.reconnects.Load() == 1 })
	if err := pub.Emit("seq", len(sent)); err != nil {
		t.Fatalf("Emit after reconnecting: %v", err)
	}
	sent = append(sent, len(sent))
	routertest.WaitFor(t, "the buffered events", func() bool { return rec.count() >= len(sent) })
	if got := rec.values(); !slices.Equal(got, sent) {
		t.Errorf("heard %v, want %v", got, sent)
	}
}

// TestReconnectSmallerMaxFrame: an event kept while disconnected that
// is over the maxframe of the server the client reconnects to (smaller
// than the last one's) is dropped and reported with ErrFrameTooBig; the
// events kept before and after it are sent, in order, and the new
// connection stays up: the server never sees a frame it would refuse.
func TestReconnectSmallerMaxFrame(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerIn(t, dir, `"maxframe": 65536, "channels": {"A": {}}`)
	var cb callbacks
	var mu sync.Mutex
	var reported []error // besides the big event, the reconnection's errors
	pub := ts.Dial(t, "A", append(cb.options(), bus.ReconnectBackoff(10*time.Millisecond, 50*time.Millisecond),
		bus.ErrorHandler(func(err error) {
			mu.Lock()
			reported = append(reported, err)
			mu.Unlock()
		}))...)
	shutdown(t, ts)
	routertest.WaitFor(t, "the client to see the server go", func() bool { return !pub.Connected() && cb.disconnects.Load() == 1 })
	for _, emit := range []func() error{
		func() error { return pub.Emit("seq", 1) },
		func() error { return pub.Emit("big", make([]byte, 20000)) },
		func() error { return pub.Emit("seq", 2) },
	} {
		if err := emit(); err != nil {
			t.Fatalf("Emit while disconnected: %v", err)
		}
	}

	// As in TestReconnectBuffer, A is served once B's client listens.
	ts2 := routertest.NewServerIn(t, dir, `"maxframe": 16384, "channels": {"B": {}}`)
	rec := recordSeq(t, ts2.Dial(t, "B"))
	if _, err := ts2.Reload(ts2.ParseConfig(t, `"maxframe": 16384, "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the kept events", func() bool { return rec.count() >= 2 })
	if err := pub.Emit("seq", 3); err != nil {
		t.Fatalf("Emit after reconnecting: %v", err)
	}
	routertest.WaitFor(t, "the event after", func() bool { return rec.count() >= 3 })
	if got := rec.values(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("heard %v, want [1 2 3]", got)
	}
	routertest.WaitFor(t, "the dropped event to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(reported, func(err error) bool { return errors.Is(err, bus.ErrFrameTooBig) })
	})
	if d, r := cb.disconnects.Load(), cb.reconnects.Load(); d != 1 || r != 1 {
		t.Errorf("%d disconnects and %d reconnects, want 1 of each: the server ended the new connection", d, r)
	}
}

// TestReconnectOff: with Reconnect(false) the client ends with its
// connection, calls OnDisconnect once, and Emit fails.
func TestReconnectOff(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	var cb callbacks
	c := ts.Dial(t, "A", append(cb.options(), bus.Reconnect(false))...)
	shutdown(t, ts)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not end")
	}
	routertest.WaitFor(t, "OnDisconnect", func() bool { return cb.disconnects.Load() == 1 })
	if err := c.Emit("x", nil); !errors.Is(err, bus.ErrDisconnected) || errors.Is(err, bus.ErrBufferFull) {
		t.Errorf("Emit after the end: %v, want ErrDisconnected", err)
	}
	if cb.reconnects.Load() != 0 {
		t.Error("OnReconnect was called")
	}
}

// TestCloseWhileReconnecting closes a client whose server has gone: Close
// returns at once (the buffered events are dropped), no callback comes
// after it, and no goroutine is left (goleak in TestMain).
func TestCloseWhileReconnecting(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	var cb callbacks
	c := ts.Dial(t, "A", append(cb.options(), bus.ReconnectBackoff(time.Millisecond, 5*time.Millisecond))...)
	shutdown(t, ts)
	routertest.WaitFor(t, "the disconnect", func() bool { return cb.disconnects.Load() == 1 })
	if err := c.Emit("kept", nil); err != nil {
		t.Fatalf("Emit while reconnecting: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // several failed attempts
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := c.Err(); err != bus.ErrClosed {
		t.Errorf("Err after Close: %v", err)
	}
	if err := c.Emit("x", nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Emit after Close: %v, want ErrClosed", err)
	}
	if n := cb.reconnects.Load(); n != 0 {
		t.Errorf("%d reconnects to no server", n)
	}
}

// fakeServer accepts one framed client on a socket of its own, answers
// its hello with a Welcome of the given version, and hands every frame
// the client sends to frames, answering nothing. It stands for a server
// that hangs after the handshake.
func fakeServer(t *testing.T, version uint64) (path string, frames <-chan wire.FrameType) {
	t.Helper()
	out := make(chan wire.FrameType, 64)
	path = serveFake(t, version, func(c net.Conn) io.Reader { return c }, func(typ wire.FrameType) {
		select {
		case out <- typ:
		default:
		}
	}, func() { close(out) })
	return path, out
}

// serveFake is fakeServer's: it reads the client through read(conn),
// tells frame of each frame's type, and calls done when the client is
// gone.
func serveFake(t *testing.T, version uint64, read func(net.Conn) io.Reader, frame func(wire.FrameType), done func()) string {
	t.Helper()
	path := filepath.Join(routertest.ShortTempDir(t), "A.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1)
	wg.Go(func() {
		defer done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conns <- c
		fr := wire.NewFrameReader(bufio.NewReader(read(c)), 1<<20)
		if _, err := fr.ReadFrame(); err != nil { // the hello
			return
		}
		if _, err := c.Write(wire.AppendWelcome(nil, &wire.Welcome{Version: version, Channel: "A", MaxFrame: 1 << 20})); err != nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			typ, _ := wire.TypeOf(f[wire.HeaderLen:])
			frame(typ)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-conns:
			c.Close()
		default:
		}
		wg.Wait()
	})
	return path
}

// TestPingTimeout connects to a server that stops answering after the
// handshake: the client pings it, and ends the connection with
// ErrPingTimeout once it has heard nothing for the ping timeout, not
// before.
func TestPingTimeout(t *testing.T) {
	path, frames := fakeServer(t, wire.PingVersion)
	errs := make(chan error, 8)
	const interval, timeout = 40 * time.Millisecond, 300 * time.Millisecond
	start := time.Now()
	c, err := bus.Dial(context.Background(), "A", bus.Socket(path), bus.Ping(interval, timeout), bus.Reconnect(false),
		bus.ErrorHandler(func(err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case typ := <-frames:
		if typ != wire.FramePing {
			t.Errorf("the client sent a %v frame, want a ping", typ)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client sent no ping")
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not give up on a server that does not answer")
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("gave up after %v, before the ping timeout %v", d, timeout)
	}
	if err := c.Err(); !errors.Is(err, bus.ErrPingTimeout) {
		t.Errorf("the client ended with %v, want ErrPingTimeout", err)
	}
	if err := <-errs; !errors.Is(err, bus.ErrPingTimeout) {
		t.Errorf("the ErrorHandler heard %v, want ErrPingTimeout", err)
	}
}

// TestNoPingForVersion1 connects to a server of protocol version 1,
// which knows no pings: the client sends none, and does not give up on
// the server for its silence.
func TestNoPingForVersion1(t *testing.T) {
	path, frames := fakeServer(t, 1)
	c, err := bus.Dial(context.Background(), "A", bus.Socket(path), bus.Ping(10*time.Millisecond, 50*time.Millisecond), bus.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case typ := <-frames:
		t.Errorf("the client sent a %v frame to a version 1 server", typ)
	case <-time.After(500 * time.Millisecond):
	}
	if !c.Connected() || c.Err() != nil {
		t.Errorf("the client ended: %v", c.Err())
	}
}

// TestPingKeepsIdleClient leaves a client idle against a real server
// where both sides ping often and give up soon: the pings are answered
// both ways, so neither side drops the other.
func TestPingKeepsIdleClient(t *testing.T) {
	// Timeouts far above the intervals, so that a machine under load
	// does not make a live peer look dead.
	ts := routertest.NewServer(t, `"pinginterval": "30ms", "pingtimeout": "1s", "channels": {"A": {}}`)
	c := ts.DialWatched(t, "A", bus.Ping(20*time.Millisecond, time.Second))
	time.Sleep(1500 * time.Millisecond)
	if st := ts.Channels()[0].Stats; st.PingTimeouts != 0 || st.Clients != 1 {
		t.Errorf("server: %d ping timeouts, %d clients; want 0 and 1", st.PingTimeouts, st.Clients)
	}
	quiet := ts.DialWatched(t, "A", bus.Ping(0, 0)) // never pings, only answers
	time.Sleep(1500 * time.Millisecond)
	if st := ts.Channels()[0].Stats; st.PingTimeouts != 0 {
		t.Errorf("server: %d ping timeouts, want 0", st.PingTimeouts)
	}
	// Both still have the connection they were dialed on (Connected or
	// Emit would not say: a dropped client reconnects).
	ts.CheckKept(t, c)
	ts.CheckKept(t, quiet)
}

// shutdown stops the server gracefully, as ncserver does on SIGTERM.
func shutdown(t *testing.T, ts *routertest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReconnectAfterSlowConsumerDrop: a client whose listener stalls
// long enough for the server to drop it as a slow consumer hears why,
// connects again, and hears new events.
func TestReconnectAfterSlowConsumerDrop(t *testing.T) {
	// Overflow "drop": the server drops the client at maxpending instead
	// of holding the publisher for stalltimeout.
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 262144, "channels": {"A": {"overflow": "drop"}}`)
	stall := make(chan struct{})
	var cb callbacks
	slow := ts.Dial(t, "A", append(cb.options(), bus.QueueLen(1), bus.ReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))...)
	if _, err := slow.On("blob", func(bus.Message) { <-stall }); err != nil {
		t.Fatal(err)
	}
	after := routertest.Record(t, slow, "after")
	pub := ts.Dial(t, "A")
	routertest.FloodUntilSlow(t, ts, pub)
	close(stall)
	routertest.WaitFor(t, "the client to reconnect", func() bool { return cb.reconnects.Load() == 1 && slow.Connected() })
	cb.mu.Lock()
	if se := (*bus.ServerError)(nil); len(cb.reasons) != 1 || !errors.As(cb.reasons[0], &se) || se.Code != bus.CodeSlowConsumer {
		t.Errorf("disconnected by %v, want the slow consumer error frame", cb.reasons)
	}
	cb.mu.Unlock()
	if err := pub.Emit("after", nil); err != nil {
		t.Fatal(err)
	}
	after.WaitCount(t, "after", 1)
}

// emitSeq emits the events "seq" 0, 1, 2... from pub on wg until stop is
// closed, storing how many in emitted. It pauses now and then, as a
// steady publisher would, and waits while the reconnect buffer is full.
func emitSeq(t *testing.T, pub *bus.Client, stop <-chan struct{}, emitted *atomic.Int64, wg *sync.WaitGroup) {
	wg.Go(func() {
		for i := 0; ; {
			select {
			case <-stop:
				return
			default:
			}
			switch err := pub.Emit("seq", i); {
			case err == nil:
				i++
				emitted.Store(int64(i))
				if i%16 == 0 {
					time.Sleep(100 * time.Microsecond) // stay below what a slow consumer is
				}
			case errors.Is(err, bus.ErrBufferFull):
				time.Sleep(time.Millisecond)
			default:
				t.Errorf("Emit: %v", err)
				return
			}
		}
	})
}

// TestPingSlowReader: a server that reads the client's events slowly,
// as one that holds its publisher back does, and answers nothing while
// the ping waits behind them, is alive: the client keeps its connection
// as long as its writes go through, and every event reaches the
// server. Without counting the writes, the ping timeout (less than half
// the time the server takes to read the queue) ended the connection,
// and the batch being written was lost.
func TestPingSlowReader(t *testing.T) {
	var events atomic.Int64
	path := serveFake(t, wire.PingVersion, func(c net.Conn) io.Reader { return slowReader{c} }, func(typ wire.FrameType) {
		if typ == wire.FrameEvent {
			events.Add(1)
		}
	}, func() {})

	// 1 MiB of events, read at about 400 KiB/s: 2.5 s, more than twice
	// the ping timeout.
	const interval, timeout = 200 * time.Millisecond, time.Second
	c, err := bus.Dial(context.Background(), "A", bus.Socket(path), bus.Ping(interval, timeout), bus.Reconnect(false),
		bus.SendBuffer(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 200)
	const n = 4500
	for i := range n {
		if err := c.Emit("e", data); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); events.Load() < n; time.Sleep(10 * time.Millisecond) {
		select {
		case <-c.Done():
			t.Fatalf("the client gave up on a server that was reading (%d of %d events read): %v", events.Load(), n, c.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server read %d of %d events in 30 s", events.Load(), n)
		}
	}
}

// slowReader reads at most 4 KiB every 10 ms.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 4096)])
}
