package bus_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// declServer stands in for a server of a given protocol version, to
// watch what a client declares: it answers hellos, records the Hello's
// interest and each Interest frame, and answers those with Applied
// frames, after a delay or when the test says (hold). It forwards
// nothing on its own; emit writes an event to the client.
type declServer struct {
	t       *testing.T
	path    string
	version uint64
	delay   time.Duration // before each Applied
	// hold, when set, is received from before each Applied is written.
	hold chan struct{}
	// answer, when set, makes the Applied frame for an Interest frame.
	answer func(wire.Interest) []byte

	mu        sync.Mutex
	hellos    []wire.Hello
	rawHellos [][]byte
	decls     []wire.Interest
	answered  uint64 // the last seq answered
	flying    int    // Interest frames not yet answered
	maxFlying int
	frames    []wire.FrameType // every frame after the hello
	events    []string         // the names of the events the client emitted
	conn      net.Conn
	wmu       sync.Mutex // writes to conn
}

func newDeclServer(t *testing.T, version uint64) *declServer {
	t.Helper()
	d := &declServer{t: t, version: version, path: filepath.Join(routertest.ShortTempDir(t), "A.sock")}
	ln, err := net.Listen("unix", d.path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var cmu sync.Mutex
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns = append(conns, c)
			cmu.Unlock()
			wg.Go(func() { d.serve(c, &wg) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		if d.hold != nil {
			close(d.hold)
		}
		wg.Wait()
	})
	return d
}

func (d *declServer) serve(c net.Conn, wg *sync.WaitGroup) {
	fr := wire.NewFrameReader(bufio.NewReader(c), 1<<20)
	frame, err := fr.ReadFrame()
	if err != nil {
		return
	}
	body := frame[wire.HeaderLen:]
	h, err := wire.DecodeHello(body)
	if err != nil {
		d.t.Errorf("hello: %v", err)
		return
	}
	d.mu.Lock()
	d.hellos = append(d.hellos, h)
	d.rawHellos = append(d.rawHellos, append([]byte(nil), body...))
	d.conn = c
	d.mu.Unlock()
	w := wire.Welcome{Version: min(h.Version, d.version), Node: uuid.New(), Channel: "A", MaxFrame: 1 << 20}
	d.write(c, wire.AppendWelcome(nil, &w))
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return
		}
		body := frame[wire.HeaderLen:]
		t, _ := wire.TypeOf(body)
		d.mu.Lock()
		d.frames = append(d.frames, t)
		d.mu.Unlock()
		switch t {
		case wire.FrameEvent:
			m, err := wire.DecodeEvent(body)
			if err != nil {
				d.t.Errorf("event: %v", err)
				return
			}
			d.mu.Lock()
			d.events = append(d.events, m.Event)
			d.mu.Unlock()
		case wire.FrameInterest:
			in, err := wire.DecodeInterest(body)
			if err != nil {
				d.t.Errorf("interest: %v", err)
				return
			}
			d.mu.Lock()
			d.decls = append(d.decls, in)
			d.flying++
			d.maxFlying = max(d.maxFlying, d.flying)
			d.mu.Unlock()
			wg.Go(func() { d.apply(c, in) })
		case wire.FramePing:
			d.write(c, wire.AppendPong(nil))
		}
	}
}

// apply answers an Interest frame.
func (d *declServer) apply(c net.Conn, in wire.Interest) {
	if d.hold != nil {
		<-d.hold
	}
	time.Sleep(d.delay)
	frame := wire.AppendApplied(nil, in.Seq)
	if d.answer != nil {
		frame = d.answer(in)
	}
	d.mu.Lock()
	d.flying--
	d.answered = max(d.answered, in.Seq)
	d.mu.Unlock()
	d.write(c, frame)
}

func (d *declServer) write(c net.Conn, frame []byte) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	c.Write(frame)
}

// emit writes an event named event to the client connected last.
func (d *declServer) emit(event string) {
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	m := wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A", Event: event, Data: []byte{0xc0}}
	d.write(c, wire.AppendEvent(nil, &m))
}

// state returns a copy of what the server has seen.
func (d *declServer) state() (hellos []wire.Hello, decls []wire.Interest, frames []wire.FrameType) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.hellos), slices.Clone(d.decls), slices.Clone(d.frames)
}

// fence emits an event from c and waits until the server has read it:
// everything c sent before has been read too.
func (d *declServer) fence(t *testing.T, c *bus.Client) {
	t.Helper()
	name := "fence-" + uuid.NewString()[:8]
	if err := c.Emit(name, nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the fence", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return slices.Contains(d.events, name)
	})
}

func dialDecl(t *testing.T, d *declServer, opts ...bus.Option) *bus.Client {
	t.Helper()
	opts = append([]bus.Option{bus.Socket(d.path), bus.Reconnect(false)}, opts...)
	c, err := bus.Dial(context.Background(), "A", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// onWithin runs c.On and fails the test when it has not returned within
// a generous time: On waits for the server only where it must.
func onWithin(t *testing.T, c *bus.Client, pattern string, fn func(bus.Message)) *bus.Listener {
	t.Helper()
	type result struct {
		l   *bus.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := c.On(pattern, fn)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.l
	case <-time.After(20 * time.Second):
		t.Fatalf("On(%q) has not returned", pattern)
		return nil
	}
}

// TestInterestOldServer connects to a server of protocol version 3. The
// version 4 Hello, with its interest field, reads as a version 3 server
// reads it; the client sends no Interest frame; On does not wait for an
// Applied frame that would never come; and the events the server sends
// reach the listeners that match them.
func TestInterestOldServer(t *testing.T) {
	d := newDeclServer(t, wire.ResumeVersion)
	c := dialDecl(t, d)
	var got sync.Map
	for _, p := range []string{"a", "b.*"} {
		onWithin(t, c, p, func(m bus.Message) { got.Store(m.Event, true) })
	}
	c.OffPattern("a")
	onWithin(t, c, "a", func(m bus.Message) { got.Store(m.Event, true) })
	d.emit("bx")
	d.emit("a")
	routertest.WaitFor(t, "both events", func() bool {
		_, a := got.Load("a")
		_, bx := got.Load("bx")
		return a && bx
	})
	d.fence(t, c)
	hellos, decls, frames := d.state()
	if len(decls) > 0 || slices.Contains(frames, wire.FrameInterest) {
		t.Errorf("the client sent %d Interest frames to a server of version 3", len(decls))
	}
	if len(hellos) != 1 || hellos[0].Version != wire.InterestVersion || hellos[0].Interest == nil {
		t.Fatalf("hellos %+v, want one of version %d with an interest", hellos, wire.InterestVersion)
	}
	// A version 3 server decodes the Hello as one of version 3 with one
	// field more: DecodeHello reads the fields of the version the Hello
	// says, and skips those that follow (PROTOCOL.md § 3.2).
	d.mu.Lock()
	raw := slices.Clone(d.rawHellos[0])
	d.mu.Unlock()
	if raw[2] != byte(wire.InterestVersion) {
		t.Fatalf("hello body % x: the version is not its third byte", raw[:4])
	}
	raw[2] = byte(wire.ResumeVersion)
	h3, err := wire.DecodeHello(raw)
	if err != nil {
		t.Fatalf("the hello read as version 3: %v", err)
	}
	if h3.Interest != nil || h3.ClientID != hellos[0].ClientID || h3.Name != hellos[0].Name {
		t.Errorf("the hello read as version 3: %+v", h3)
	}
}

// TestInterestHello checks what a Hello declares: nothing listened to
// yet (only what is addressed to the client), All when the client asks
// for history (every event, until a listener says what it wants), and
// no interest at all with ReceiveAll.
func TestInterestHello(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  bus.Option
		want string
	}{
		{"plain", bus.Name("plain"), "[]"},
		{"since", bus.Since(time.Minute), "all"},
		{"receiveall", bus.ReceiveAll(), "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeclServer(t, wire.InterestVersion)
			dialDecl(t, d, tt.opt)
			hellos, _, _ := d.state()
			got := "none"
			if in := hellos[0].Interest; in != nil && in.All {
				got = "all"
			} else if in != nil {
				got = fmt.Sprint(in.Patterns)
			}
			if got != tt.want {
				t.Errorf("the hello declares %s, want %s", got, tt.want)
			}
		})
	}
}

// lastDecl is what the server was last told: the Hello's declaration
// or the last Interest frame's.
func lastDecl(d *declServer) string {
	hellos, decls, _ := d.state()
	in := hellos[len(hellos)-1].Interest
	if len(decls) > 0 {
		in = &decls[len(decls)-1]
	}
	switch {
	case in == nil:
		return "none"
	case in.All:
		return "all"
	}
	return strings.Join(in.Patterns, " ")
}

// TestInterestOnWaits checks that On returns only once the server has
// answered a declaration that holds its pattern, that a pattern already
// declared sends nothing, and that Off narrows without waiting.
func TestInterestOnWaits(t *testing.T) {
	d := newDeclServer(t, wire.InterestVersion)
	d.delay = 20 * time.Millisecond
	c := dialDecl(t, d)
	check := func(pattern string) {
		t.Helper()
		d.mu.Lock()
		defer d.mu.Unlock()
		for i := len(d.decls) - 1; i >= 0; i-- {
			if in := d.decls[i]; in.Seq <= d.answered {
				if !in.All && !slices.Contains(in.Patterns, pattern) {
					t.Errorf("On(%q) returned when the server had applied %v", pattern, in.Patterns)
				}
				return
			}
		}
		t.Errorf("On(%q) returned before the server applied any declaration", pattern)
	}
	nop := func(bus.Message) {}
	onWithin(t, c, "a", nop)
	check("a")
	onWithin(t, c, "b|c", nop)
	check("b|c")
	_, before, _ := d.state()
	l := onWithin(t, c, "a", nop) // declared already
	if _, after, _ := d.state(); len(after) != len(before) {
		t.Errorf("a second listener for a declared pattern sent %d Interest frames", len(after)-len(before))
	}
	c.Off(l)
	c.OffPattern("b|c")
	routertest.WaitFor(t, "the narrowed declaration", func() bool { return lastDecl(d) == "a" })
	c.OffPattern("a")
	routertest.WaitFor(t, "the empty declaration", func() bool { return lastDecl(d) == "" })
	if d.maxFlying > 1 {
		t.Errorf("%d Interest frames in flight at once", d.maxFlying)
	}
}

// TestInterestFlood floods the client with On and Off from many
// goroutines while the server takes its time to answer: at most one
// Interest frame is ever in flight, far fewer frames go out than changes
// are made, and the server ends up with the final set of patterns.
func TestInterestFlood(t *testing.T) {
	d := newDeclServer(t, wire.InterestVersion)
	d.delay = time.Millisecond
	c := dialDecl(t, d)
	const workers, rounds, kinds = 8, 2500, 40
	var wg sync.WaitGroup
	nop := func(bus.Message) {}
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				p := fmt.Sprintf("p%d", (w*rounds+i)%kinds)
				l, err := c.On(p, nop)
				if err != nil {
					t.Error(err)
					return
				}
				if i < rounds-1 { // each worker keeps its last
					c.Off(l)
				}
			}
		})
	}
	wg.Wait()
	var want []string
	for w := range workers {
		want = append(want, fmt.Sprintf("p%d", (w*rounds+rounds-1)%kinds))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	routertest.WaitFor(t, "the final declaration", func() bool { return lastDecl(d) == strings.Join(want, " ") })
	_, decls, _ := d.state()
	d.mu.Lock()
	maxFlying := d.maxFlying
	d.mu.Unlock()
	t.Logf("%d changes, %d Interest frames", 2*workers*rounds, len(decls))
	if maxFlying != 1 {
		t.Errorf("%d Interest frames in flight at once, want 1", maxFlying)
	}
	if len(decls) >= workers*rounds {
		t.Errorf("%d Interest frames for %d On calls: not coalesced", len(decls), workers*rounds)
	}
}

// TestInterestInListener holds every Applied frame until a listener's
// On has returned: On called from a listener does not wait (the Applied
// frame may sit behind events the dispatcher has not taken), while On
// called from elsewhere does.
func TestInterestInListener(t *testing.T) {
	d := newDeclServer(t, wire.InterestVersion)
	d.hold = make(chan struct{})
	c := dialDecl(t, d)
	inner := make(chan error, 1)
	go func() { d.hold <- struct{}{} }() // the first On's Applied
	onWithin(t, c, "go", func(bus.Message) {
		_, err := c.On("inner", func(bus.Message) {})
		inner <- err
	})
	outer := make(chan struct{})
	go func() {
		c.On("outer", func(bus.Message) {})
		close(outer)
	}()
	d.emit("go")
	select {
	case err := <-inner:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("On in a listener waits for the server")
	}
	select {
	case <-outer:
		t.Fatal("On outside a listener returned before the server applied its pattern")
	default:
	}
	for { // answer until the outer On returns
		select {
		case d.hold <- struct{}{}:
			continue
		case <-outer:
		}
		break
	}
	routertest.WaitFor(t, "the declaration with all three", func() bool { return lastDecl(d) == "go inner outer" })
}

// TestInterestBadApplied checks that an Applied frame that does not
// decode, or answers a declaration the client never sent, ends the
// connection as any bad frame does.
func TestInterestBadApplied(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(wire.Interest) []byte
		want   string
	}{
		{"malformed", func(wire.Interest) []byte {
			return []byte{0, 0, 0, 3, 0x92, 9, 0xa1} // [9, "..." cut short
		}, "applied"},
		{"unsent seq", func(in wire.Interest) []byte { return wire.AppendApplied(nil, in.Seq+5) }, "declared up to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeclServer(t, wire.InterestVersion)
			d.answer = tt.answer
			var disconnects atomic.Int32
			c := dialDecl(t, d, bus.OnDisconnect(func(error) { disconnects.Add(1) }))
			onWithin(t, c, "x", func(bus.Message) {})
			<-c.Done()
			if err := c.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("the client ended with %v, want an error naming %q", err, tt.want)
			}
			if n := disconnects.Load(); n != 1 {
				t.Errorf("%d disconnects, want 1", n)
			}
		})
	}
}

// TestInterestTooMany checks that a client with more distinct patterns
// than a declaration holds, or with a pattern too long for one,
// declares All, and lists its patterns again once they fit.
func TestInterestTooMany(t *testing.T) {
	d := newDeclServer(t, wire.InterestVersion)
	c := dialDecl(t, d)
	nop := func(bus.Message) {}
	for i := range wire.MaxPatterns {
		onWithin(t, c, fmt.Sprintf("e%d", i), nop)
	}
	if got := lastDecl(d); got == "all" || len(strings.Fields(got)) != wire.MaxPatterns {
		t.Fatalf("%d patterns declared as %.40q, want them listed", wire.MaxPatterns, got)
	}
	last := onWithin(t, c, "one-too-many", nop)
	if got := lastDecl(d); got != "all" {
		t.Errorf("%d patterns declared as %.40q, want all", wire.MaxPatterns+1, got)
	}
	c.Off(last)
	routertest.WaitFor(t, "the patterns listed again", func() bool { return lastDecl(d) != "all" })
	for i := range wire.MaxPatterns {
		c.OffPattern(fmt.Sprintf("e%d", i))
	}
	long := onWithin(t, c, strings.Repeat("x", wire.MaxPatternLen+1), nop)
	if got := lastDecl(d); got != "all" {
		t.Errorf("a pattern of %d bytes declared as %.40q, want all", wire.MaxPatternLen+1, got)
	}
	c.Off(long)
	routertest.WaitFor(t, "the empty declaration", func() bool { return lastDecl(d) == "" })
}

// TestInterestBigHello reconnects a client whose patterns would make its
// Hello bigger than a server reads (65536 bytes): the Hello declares
// All, and an Interest frame lists the patterns right after.
func TestInterestBigHello(t *testing.T) {
	d := newDeclServer(t, wire.InterestVersion)
	var reconnects atomic.Int32
	c := dialDecl(t, d, bus.Reconnect(true), bus.ReconnectBackoff(time.Millisecond, 10*time.Millisecond),
		bus.OnReconnect(func() { reconnects.Add(1) }))
	var want []string
	for i := range 20 {
		p := fmt.Sprintf("%02d%s", i, strings.Repeat("x", 4000))
		want = append(want, p)
		onWithin(t, c, p, func(bus.Message) {})
	}
	if got := lastDecl(d); got != strings.Join(want, " ") {
		t.Fatalf("before the reconnect, the server was told %.40q", got)
	}
	d.mu.Lock()
	d.conn.Close()
	d.mu.Unlock()
	routertest.WaitFor(t, "the reconnect", func() bool { return reconnects.Load() == 1 })
	routertest.WaitFor(t, "the patterns declared again", func() bool {
		hellos, decls, _ := d.state()
		return len(hellos) == 2 && len(decls) > 0 && decls[len(decls)-1].Seq == 1 && lastDecl(d) == strings.Join(want, " ")
	})
	hellos, _, _ := d.state()
	if in := hellos[1].Interest; in == nil || !in.All {
		t.Errorf("the second hello declares %+v, want All", in)
	}
	if n := len(hellos[1].Interest.Patterns); n != 0 {
		t.Errorf("the second hello lists %d patterns", n)
	}
}
