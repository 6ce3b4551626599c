package bus_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const oneChannel = `"channels": {"A": {}}`

// TestOnPatterns checks which event names a listener hears: patterns are
// regular expressions anchored at both ends.
func TestOnPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{"log", []string{"log"}},
		{"nc-.*", []string{"nc-", "nc-a", "nc-control-showconfig"}},
		{"nc-control-.*", []string{"nc-control-showconfig"}},
		{"log|nc-a", []string{"log", "nc-a"}},
		{".*", []string{"log", "logs", "xlog", "nc-", "nc-a", "nc-control-showconfig", "a.b"}},
		{"a.b", []string{"a.b"}}, // '.' is a metacharacter, but "a.b" is the only name here it matches
		{`a\.b`, []string{"a.b"}},
		{"og", nil},
	}
	sent := []string{"log", "logs", "xlog", "nc-", "nc-a", "nc-control-showconfig", "a.b"}
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	recs := make([]*routertest.Recorder, len(tests))
	for i, tt := range tests {
		recs[i] = routertest.Record(t, sub, tt.pattern)
	}
	all := routertest.Record(t, sub, ".*")
	for _, e := range sent {
		if err := pub.Emit(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	all.WaitCount(t, "a.b", 1)
	for i, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got := recs[i].Events()
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("heard (-want +got):\n-%q\n+%q", tt.want, got)
			}
		})
	}
}

// TestOnBadPattern checks that an invalid pattern is refused with an
// error that quotes the pattern as given, never the anchored expression
// the client makes from it, and that a pattern valid only once anchored
// ("a)|(b" would read as "^(?:a)|(b)$") is refused too.
func TestOnBadPattern(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	c := ts.Dial(t, "A")
	tests := []struct {
		name, pattern, want string
	}{
		{"unclosed paren", "log(", "missing closing ): `log(`"},
		{"lone paren", "(", "missing closing ): `(`"},
		{"unbalanced alternation", "a)|(b", "unexpected ): `a)|(b`"},
		{"bad range", "[z-a]", "invalid character class range: `z-a`"},
		{"unclosed quote", `\Qlog`, `\Q without \E`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.On(tt.pattern, func(bus.Message) {})
			if err == nil {
				t.Fatalf("On(%q): no error", tt.pattern)
			}
			// CheckPattern says the same, without a client.
			if cerr := bus.CheckPattern(tt.pattern); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("CheckPattern(%q) = %v; On says %v", tt.pattern, cerr, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("%q", tt.pattern)) || !strings.Contains(msg, tt.want) {
				t.Errorf("On(%q): %v; want an error naming the pattern and saying %q", tt.pattern, msg, tt.want)
			}
			if strings.Contains(msg, "^(?:") {
				t.Errorf("On(%q): %v; the error quotes the anchored expression", tt.pattern, msg)
			}
		})
	}
	if _, err := c.On("log", nil); err == nil {
		t.Error("On with a nil function: no error")
	}
}

// TestOnceUnderConcurrentEmits emits from many goroutines, locally and
// from another client, and checks that a Once listener runs exactly once.
func TestOnceUnderConcurrentEmits(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	sub := ts.Dial(t, "A")
	pub := ts.Dial(t, "A")
	var calls atomic.Int32
	if _, err := sub.Once("ping", func(bus.Message) { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	all := routertest.Record(t, sub, "ping")
	var wg sync.WaitGroup
	for i := range 8 {
		c := pub
		if i%2 == 0 {
			c = sub // the client's own emits reach its own listeners too
		}
		wg.Go(func() {
			for range 50 {
				if err := c.Emit("ping", i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	all.WaitCount(t, "ping", 400)
	if n := calls.Load(); n != 1 {
		t.Errorf("Once listener ran %d times, want 1", n)
	}
}

// TestNoCallAfterOff: once Off returns, the dispatcher starts no call of
// the listener. A pattern slow to match widened the window in which it
// had found the listener not removed and then called it: before, a
// call came after Off returned in most rounds. A call that has begun may
// still be running, and a listener cannot tell such a call, which read
// the flag a moment after Off returned, from one that began late: the
// test allows that in one round, or one in fifty, where the late starts
// came in about one in ten.
func TestNoCallAfterOff(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	name := "e" + strings.Repeat("ab", 100)
	pattern := `e(?:a|b|ab|ba)*(?:x|ab|b)` // matches name, slowly
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			pub.Emit(name, nil)
		}
	}()
	defer func() { close(stop); <-done }()
	rounds, lateRounds := 0, 0
	for deadline := time.Now().Add(3 * time.Second); rounds < 300 && time.Now().Before(deadline); rounds++ {
		var offReturned, calls, late atomic.Int32
		l, err := sub.On(pattern, func(bus.Message) {
			if offReturned.Load() != 0 {
				late.Add(1)
			}
			calls.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
		for calls.Load() == 0 {
			time.Sleep(10 * time.Microsecond)
		}
		sub.Off(l)
		offReturned.Store(1)
		time.Sleep(2 * time.Millisecond)
		if late.Load() != 0 {
			lateRounds++
		}
	}
	if rounds < 20 {
		t.Skipf("only %d rounds in the time: too few to tell", rounds)
	}
	if lateRounds > max(1, rounds/50) {
		t.Errorf("in %d of %d rounds the listener was called after Off returned", lateRounds, rounds)
	}
	t.Logf("%d rounds, %d with a call that read the flag after Off returned", rounds, lateRounds)
}

// TestOff checks that a removed listener hears nothing more while the
// others go on.
func TestOff(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	var offCalls, patternCalls atomic.Int32
	l, err := sub.On("tick", func(bus.Message) { offCalls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	sub.On("t.ck", func(bus.Message) { patternCalls.Add(1) })
	sub.On("t.ck", func(bus.Message) { patternCalls.Add(1) })
	keep := routertest.Record(t, sub, "tick")
	pub.Emit("tick", 1)
	keep.WaitCount(t, "tick", 1)
	sub.Off(l)
	sub.OffPattern("t.ck")
	for i := range 10 {
		pub.Emit("tick", i)
	}
	keep.WaitCount(t, "tick", 11)
	if n := offCalls.Load(); n != 1 {
		t.Errorf("listener removed with Off ran %d times, want 1", n)
	}
	if n := patternCalls.Load(); n != 2 {
		t.Errorf("listeners removed with OffPattern ran %d times, want 2", n)
	}
}

// TestManyListeners registers several listeners on one event; each hears
// every event, and they run in registration order.
func TestManyListeners(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	var mu sync.Mutex
	var order []int
	for i := range 10 {
		sub.On("ev", func(bus.Message) {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	done := routertest.Record(t, sub, "ev")
	for range 3 {
		pub.Emit("ev", nil)
	}
	done.WaitCount(t, "ev", 3)
	mu.Lock()
	defer mu.Unlock()
	want := strings.Repeat("0 1 2 3 4 5 6 7 8 9 ", 3)
	if got := strings.Trim(fmt.Sprint(order), "[]") + " "; got != want {
		t.Errorf("listener calls (-want +got):\n-%s\n+%s", want, got)
	}
}

// TestDataTypes sends values of several Go types and decodes each into a
// value of the listener's choice.
func TestDataTypes(t *testing.T) {
	type point struct {
		X int    `json:"x"`
		Y int    `json:"y"`
		L string `json:"label,omitempty"`
	}
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	rec := routertest.Record(t, sub, ".*")
	pub.Emit("point", point{1, 2, "p"})
	pub.Emit("map", map[string]any{"x": 3, "y": 4})
	pub.Emit("slice", []int{1, 2, 3})
	pub.Emit("bytes", []byte{0, 1, 2})
	pub.Emit("nil", nil)
	pub.Emit("raw", bus.RawData{0x93, 1, 2, 3}) // msgpack [1,2,3]
	rec.WaitCount(t, "raw", 1)
	msgs := map[string]bus.Message{}
	for _, m := range rec.Messages() {
		msgs[m.Event] = m
	}
	var p point
	if err := msgs["point"].Decode(&p); err != nil || p != (point{1, 2, "p"}) {
		t.Errorf("point: %+v, %v", p, err)
	}
	p = point{}
	if err := msgs["map"].Decode(&p); err != nil || p != (point{X: 3, Y: 4}) {
		t.Errorf("map into struct: %+v, %v", p, err)
	}
	for _, name := range []string{"slice", "raw"} {
		var s []int
		if err := msgs[name].Decode(&s); err != nil || fmt.Sprint(s) != "[1 2 3]" {
			t.Errorf("%s: %v, %v", name, s, err)
		}
	}
	var b []byte
	if err := msgs["bytes"].Decode(&b); err != nil || fmt.Sprint(b) != "[0 1 2]" {
		t.Errorf("bytes: %v, %v", b, err)
	}
	pp := &point{X: 1}
	if err := msgs["nil"].Decode(&pp); err != nil || pp != nil {
		t.Errorf("nil into a pointer: %v, %v; want nil", pp, err)
	}
	var wrong int
	if err := msgs["point"].Decode(&wrong); err == nil {
		t.Error("decoding a map into an int: no error")
	}
	if err := pub.Emit("bad", bus.RawData{0x93, 1}); err == nil {
		t.Error("Emit with RawData that is not one msgpack value: no error")
	}
	if err := pub.Emit("bad", make(chan int)); err == nil {
		t.Error("Emit of a channel value: no error")
	}
}

func TestEmitErrors(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 2048, "maxpending": 65536, "channels": {"A": {}}`)
	c := ts.Dial(t, "A")
	if got := c.MaxFrame(); got != 2048 {
		t.Errorf("MaxFrame = %d, want the server's 2048", got)
	}
	tests := []struct {
		name  string
		event string
		data  any
		want  error
	}{
		{"too big", "big", strings.Repeat("x", 4096), bus.ErrFrameTooBig},
		{"empty name", "", nil, nil},
		{"name too long", strings.Repeat("e", bus.MaxEventName+1), nil, nil},
		{"name not UTF-8", "\xff", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Emit(tt.event, tt.data)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Emit: %v, want an error (%v)", err, tt.want)
			}
		})
	}
	// The refused events cost nothing: the connection still works.
	rec := routertest.Record(t, c, "ok")
	other := ts.Dial(t, "A")
	other.Emit("ok", nil)
	rec.WaitCount(t, "ok", 1)
}

// TestEmitNameRemembered: the client remembers the last event name it
// found valid, so a name emitted again is not checked again; a different
// one, right after it, still is, and non-ASCII UTF-8 names pass.
func TestEmitNameRemembered(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	c := ts.Dial(t, "A")
	rec := routertest.Record(t, ts.Dial(t, "A"), ".*")
	for _, step := range []struct {
		event string
		ok    bool
	}{
		{"été", true}, {"été", true}, {"\xff", false}, {"été\xff", false}, {"été", true}, {"", false}, {"ok", true},
	} {
		err := c.Emit(step.event, nil)
		if step.ok != (err == nil) {
			t.Errorf("Emit(%q): %v, want ok %v", step.event, err, step.ok)
		}
		if err != nil && !errors.Is(err, wire.ErrEventName) {
			t.Errorf("Emit(%q): %v, want %v", step.event, err, wire.ErrEventName)
		}
	}
	rec.WaitCount(t, "ok", 1)
	if n := rec.Count("été"); n != 3 {
		t.Errorf("heard %d été events, want 3", n)
	}
}

func TestDialErrors(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	ctx := context.Background()
	if _, err := bus.Dial(ctx, "nosuch", bus.SocketTemplate(ts.Template)); !errors.Is(err, bus.ErrNoServer) {
		t.Errorf("dial a channel with no socket: %v, want ErrNoServer", err)
	}
	if _, err := bus.Dial(ctx, "../A", bus.SocketTemplate(ts.Template)); err == nil {
		t.Error("dial an invalid channel name: no error")
	}
	if _, err := bus.Dial(ctx, "B", bus.Socket(ts.Path("A"))); err == nil || !strings.Contains(err.Error(), `serves channel "A"`) {
		t.Errorf("dial B on A's socket: %v, want a mismatch error", err)
	}
}

// TestCloseFromListener closes the client from inside its own listener,
// as the original's examples do; Close must not deadlock.
func TestCloseFromListener(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	closed := make(chan error, 1)
	sub.On("bye", func(bus.Message) { closed <- sub.Close() })
	pub.Emit("bye", nil)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close from a listener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a listener did not return")
	}
	<-sub.Done()
	if err := sub.Emit("x", nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Emit after Close: %v, want ErrClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseFlushes emits a burst and closes at once: every event is
// written before Close returns.
func TestCloseFlushes(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	sub := ts.Dial(t, "A")
	rec := routertest.Record(t, sub, "burst")
	pub := ts.Dial(t, "A")
	for i := range 5000 {
		if err := pub.Emit("burst", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "burst", 5000)
}

// TestServerShutdownReported checks that a client hears why the server
// closed its connection.
func TestServerShutdownReported(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	errs := make(chan error, 4)
	c := ts.Dial(t, "A", bus.ErrorHandler(func(err error) { errs <- err }), bus.Reconnect(false))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	var se *bus.ServerError
	if err := <-errs; !errors.As(err, &se) || se.Code != bus.CodeShutdown {
		t.Errorf("ErrorHandler got %v, want a ServerError with CodeShutdown", err)
	}
	if err := c.Emit("x", nil); !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("Emit after the server left: %v, want ErrDisconnected", err)
	}
}

// TestListenerPanic checks that a panicking listener is reported and the
// client goes on.
func TestListenerPanic(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	errs := make(chan error, 4)
	sub := ts.Dial(t, "A", bus.ErrorHandler(func(err error) { errs <- err }))
	sub.On("boom", func(bus.Message) { panic("listener bug") })
	rec := routertest.Record(t, sub, "after")
	pub := ts.Dial(t, "A")
	pub.Emit("boom", nil)
	pub.Emit("after", nil)
	rec.WaitCount(t, "after", 1)
	if err := <-errs; !strings.Contains(err.Error(), "listener bug") {
		t.Errorf("ErrorHandler got %v, want the panic", err)
	}
}

// TestFlush checks that Flush returns once everything is written.
func TestFlush(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	sub := ts.Dial(t, "A")
	rec := routertest.Record(t, sub, "f")
	pub := ts.Dial(t, "A")
	for i := range 1000 {
		pub.Emit("f", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "f", 1000)
	got := rec.Messages()
	seq := make([]int, len(got))
	for i, m := range got {
		m.Decode(&seq[i])
	}
	if !sort.IntsAreSorted(seq) {
		t.Error("events arrived out of order")
	}
}

// TestFlushAfterFailedWrite: a server that reads nothing after the
// handshake fills the socket, and the client's writer waits in a write
// of events Emit took. The server then closes the connection: that
// write fails, its events unwritten. Flush, waiting meanwhile, reports
// it (ErrDisconnected) instead of success, as it did before.
//
// Both conditions are read off the goroutines' stacks rather than
// timed: a Flush that runs out of time proves no full socket on a
// loaded machine, and a Flush that starts only after the write failed
// finds nothing queued and rightly returns nil.
func TestFlushAfterFailedWrite(t *testing.T) {
	path := filepath.Join(routertest.ShortTempDir(t), "A.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cut := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := wire.NewFrameReader(bufio.NewReader(nc), 1<<20).ReadFrame(); err != nil { // the hello
			return
		}
		nc.Write(wire.AppendWelcome(nil, &wire.Welcome{Version: 1, Channel: "A", MaxFrame: 1 << 20}))
		<-cut // reads nothing more
	}()
	defer func() { <-served }()
	c, err := bus.Dial(context.Background(), "A", bus.Socket(path), bus.Reconnect(false))
	if err != nil {
		close(cut)
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blob := make([]byte, 16<<10)
	var flushed chan error
	for i := 0; flushed == nil; i++ {
		if i == 10000 {
			close(cut)
			t.Fatal("the socket never filled")
		}
		if err := c.Emit("blob", blob); err != nil {
			close(cut)
			t.Fatal(err)
		}
		// A Flush either returns nil, all written and the socket not full
		// yet, or waits while the writer waits for room in the socket,
		// which the server never makes.
		f := make(chan error, 1)
		go func() { f <- c.Flush(ctx) }()
		for deadline := time.Now().Add(30 * time.Second); flushed == nil; {
			select {
			case err := <-f:
				if err != nil {
					close(cut)
					t.Fatalf("Flush before the server closed: %v", err)
				}
			case <-time.After(time.Millisecond):
				if time.Now().After(deadline) {
					close(cut)
					t.Fatal("Flush neither returned nor waited for a writer stuck in a full socket")
				}
				if routertest.StacksShow(`[IO wait`, "bus.(*session).writeChunks(") && routertest.StacksShow(`[sync.Cond.Wait`, "bus.(*Client).Flush(") {
					flushed = f // the writer waits in a write, and Flush for it
				}
				continue
			}
			break
		}
	}
	close(cut)
	if err := <-flushed; !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("Flush returned %v, though the write it waited for failed", err)
	}
}

// TestFlushNoEventLost: a write of pongs alone that a broken connection
// cuts short loses no event, and Flush does not say it did: the client
// reconnects, and Flush returns nil. (A first version of the failed
// write's report counted any failed write.)
func TestFlushNoEventLost(t *testing.T) {
	path := filepath.Join(routertest.ShortTempDir(t), "A.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	handshake := func(nc net.Conn) bool {
		if _, err := wire.NewFrameReader(bufio.NewReader(nc), 1<<20).ReadFrame(); err != nil {
			return false
		}
		_, err := nc.Write(wire.AppendWelcome(nil, &wire.Welcome{Version: wire.PingVersion, Channel: "A", MaxFrame: 1 << 20}))
		return err == nil
	}
	first := make(chan net.Conn, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil || !handshake(nc) {
			return
		}
		first <- nc
		// Pings, never reading: the client's pongs fill the socket.
		var burst []byte
		for range 4096 {
			burst = append(burst, wire.AppendPing(nil)...)
		}
		for range 100 {
			if _, err := nc.Write(burst); err != nil {
				break
			}
		}
		next, err := ln.Accept()
		if err != nil {
			return
		}
		defer next.Close()
		if handshake(next) {
			io.Copy(io.Discard, next)
		}
	}()
	c, err := bus.Dial(context.Background(), "A", bus.Socket(path), bus.ReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	nc := <-first
	time.Sleep(300 * time.Millisecond) // the pongs fill the socket: the writer waits
	flushed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		flushed <- c.Flush(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	nc.Close()
	if err := <-flushed; err != nil {
		t.Errorf("Flush, no event ever emitted, returned %v", err)
	}
	c.Close()
	ln.Close()
	<-served
}

// TestServerShutdownDelivers has the server shut down while a slow
// listener is behind: every event the server wrote before it closed still
// reaches the listener.
func TestServerShutdownDelivers(t *testing.T) {
	const n = 200
	ts := routertest.NewServer(t, oneChannel)
	var got atomic.Int32
	slow := ts.Dial(t, "A")
	slow.On("e", func(bus.Message) {
		time.Sleep(time.Millisecond)
		got.Add(1)
	})
	witness := routertest.Record(t, ts.Dial(t, "A"), "e")
	pub := ts.Dial(t, "A")
	for i := range n {
		pub.Emit("e", i)
	}
	witness.WaitCount(t, "e", n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got.Load() == n {
		t.Log("the slow listener caught up before the shutdown; the test proves less than it should")
	}
	routertest.WaitFor(t, "the slow listener to hear every event", func() bool { return got.Load() == n })
}

// TestDialLateHello checks that Dial makes a new connection when the
// server took its first for a JSON client (its hello came after the
// JSON grace, as when the process is descheduled), and gives up after a
// few. The socket in front of the real server answers the first
// connections in JSON, as a server whose grace had passed does, and
// joins the next ones to the server.
func TestDialLateHello(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	for _, tc := range []struct {
		name       string
		lateFirst  int // connections answered in JSON before one is joined to the server
		wantAccept int
		wantErr    bool
	}{
		{"second connection", 1, 2, false},
		{"every connection", 1000, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := filepath.Join(routertest.ShortTempDir(t), "front.sock")
			ln, err := net.Listen("unix", front)
			if err != nil {
				t.Fatal(err)
			}
			var accepted atomic.Int32
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if int(accepted.Add(1)) <= tc.lateFirst {
						// As the server does: the hello arrives, and is
						// answered in JSON.
						c.Read(make([]byte, 256))
						c.Write([]byte(`{"event":"nc-error","data":{"code":7,"message":"late hello"}}` + "\x00"))
						c.Close()
						continue
					}
					back, err := net.Dial("unix", ts.Path("A"))
					if err != nil {
						c.Close()
						continue
					}
					wg.Add(2)
					go func() { defer wg.Done(); io.Copy(back, c); back.Close() }()
					go func() { defer wg.Done(); io.Copy(c, back); c.Close() }()
				}
			}()
			defer func() { ln.Close(); wg.Wait() }()

			c, err := bus.Dial(context.Background(), "A", bus.Socket(front))
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "JSON grace") {
					t.Errorf("Dial: %v; want the late-hello error", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				sub := ts.Dial(t, "A")
				rec := routertest.Record(t, sub, ".*")
				if err := c.Emit("through", nil); err != nil {
					t.Fatal(err)
				}
				rec.WaitCount(t, "through", 1)
				c.Close()
			}
			if n := int(accepted.Load()); n != tc.wantAccept {
				t.Errorf("Dial made %d connections, want %d", n, tc.wantAccept)
			}
		})
	}
}

// TestBurstsArriveIntact emits events as fast as Emit takes them, so
// that send batches grow past the size kept for reuse (1 MiB), and checks
// that every event arrives whole and in order: a batch being written
// must never share its memory with the one Emit is filling.
func TestBurstsArriveIntact(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	const events = 200_000
	var bad, next atomic.Int64
	done := make(chan struct{})
	if _, err := sub.On("n", func(m bus.Message) {
		// The data is a bin8 of 64 bytes, each the event's number mod 256,
		// after 8 bytes of the number itself.
		n := next.Load()
		if len(m.Data) != 66 || m.Data[0] != 0xc4 || int64(binary.BigEndian.Uint64(m.Data[2:])) != n || !allBytes(m.Data[10:], byte(n)) {
			bad.Add(1)
		}
		if next.Add(1) == events {
			close(done)
		}
	}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 66)
	data[0], data[1] = 0xc4, 64
	for i := range events {
		// Stay at most 8192 events ahead of the subscriber, so that it is
		// never dropped as a slow consumer.
		for int64(i)-next.Load() > 8192 {
			runtime.Gosched()
		}
		binary.BigEndian.PutUint64(data[2:], uint64(i))
		for j := 10; j < len(data); j++ {
			data[j] = byte(i)
		}
		if err := pub.Emit("n", bus.RawData(data)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%d of %d events arrived", next.Load(), events)
	}
	if n := bad.Load(); n != 0 {
		t.Errorf("%d of %d events arrived damaged or out of order", n, events)
	}
}

func allBytes(b []byte, v byte) bool {
	for _, x := range b {
		if x != v {
			return false
		}
	}
	return true
}

// TestKeptData keeps the data of many events of many sizes, appending
// to each, and then checks that each still holds its own event's value:
// the data a listener gets is its own, not the read buffer's.
func TestKeptData(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	const n = 3000
	value := func(i int) []byte {
		return bytes.Repeat([]byte{byte(i)}, i%1500)
	}
	var mu sync.Mutex
	var kept [][]byte
	done := make(chan struct{})
	if _, err := sub.On("e", func(m bus.Message) {
		mu.Lock()
		defer mu.Unlock()
		_ = append(m.Data, 0xff, 0xff, 0xff) // must not write into another event's data
		kept = append(kept, m.Data)
		if len(kept) == n {
			close(done)
		}
	}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := pub.Emit("e", value(i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d events arrived", len(kept), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, d := range kept {
		var got []byte
		if err := (bus.Message{Data: d}).Decode(&got); err != nil || !bytes.Equal(got, value(i)) {
			t.Fatalf("event %d: data % x (%v), want %d bytes of %#x", i, wire.Clip(string(d), 16), err, i%1500, byte(i))
		}
	}
}
