package natslink

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestStalledNATS: a NATS server that takes nothing (here, the path to
// it stops carrying the link's bytes) holds a publisher no longer than
// WriteTimeout: the write fails, nats.go drops the connection, and what
// comes next waits in the buffer. Once the path is back, the link
// reconnects and sends it; every event arrives, in order, or is counted
// lost by the receiver (what nats.go had not written when the write
// failed), none is dropped. Meanwhile Stats answers, and says the link
// is stalled. With nats.go's own write timeout, a publisher waited a
// minute, and Stats with it.
func TestStalledNATS(t *testing.T) {
	ns := startNATS(t)
	p := newStallProxy(t, ns.Addr().String())
	log := &syncBuffer{}
	// Longer than Stats waits for the connection (statsWait), so that
	// Stats comes while a write waits.
	const writeTimeout = 3 * time.Second
	base := Config{Heartbeat: 20 * time.Millisecond, PeerTimeout: 2 * time.Second, ReconnectWait: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	node := uuid.New()
	scfg := base
	scfg.URL, scfg.Node, scfg.WriteTimeout, scfg.Buffer = p.url(), node, writeTimeout, 64<<20
	scfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	sender, err := Open(scfg, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sender.Close)
	var got, disorder atomic.Int64
	var last atomic.Int64
	last.Store(-1)
	rcfg := base
	rcfg.URL, rcfg.Node = ns.ClientURL(), uuid.New()
	receiver, err := Open(rcfg, func(ev *Event) {
		i := int64(ev.Data[3])<<8 | int64(ev.Data[4])
		if i <= last.Load() {
			disorder.Add(1)
		}
		last.Store(i)
		got.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(receiver.Close)
	receiver.SetChannels([]string{"A"})

	var blockedSince atomic.Int64 // the start of the Publish under way, in Unix ns; 0: none
	publish := func(i int) time.Duration {
		data := make([]byte, 16<<10) // a msgpack bin 16, i in its first bytes
		data[0], data[1], data[2], data[3], data[4] = 0xc5, byte((len(data)-3)>>8), byte(len(data)-3), byte(i>>8), byte(i)
		start := time.Now()
		blockedSince.Store(start.UnixNano())
		defer blockedSince.Store(0)
		if err := sender.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: data}, uuid.Nil); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
		return time.Since(start)
	}
	waitFor(t, "the two links to hear each other", func() bool {
		return len(sender.Peers()) == 1 && len(receiver.Peers()) == 1
	})
	publish(0)
	waitFor(t, "the first event", func() bool { return got.Load() == 1 })
	if st := sender.Stats(); !st.Connected || st.Stalled {
		t.Fatalf("before the stall: connected %v, stalled %v", st.Connected, st.Stalled)
	}

	// The path stops: the kernel's buffers fill, then a write waits.
	// The publisher goes on until one Publish has waited for it.
	p.pause()
	sent := make(chan int, 1)
	go func() {
		i := 1
		for ; i < 60000 && publish(i) < writeTimeout/2; i++ {
		}
		sent <- i + 1
	}()
	waitFor(t, "a Publish to wait for its write", func() bool {
		since := blockedSince.Load()
		return since != 0 && time.Since(time.Unix(0, since)) > 300*time.Millisecond
	})
	st := sender.Stats()
	if !st.Stalled || !st.Connected {
		t.Errorf("while a write waits: stalled %v, connected %v; want both", st.Stalled, st.Connected)
	}
	if blockedSince.Load() == 0 {
		t.Error("Stats returned only once the write had failed")
	}
	var n int
	select {
	case n = <-sent:
	case <-time.After(20 * time.Second):
		t.Fatalf("a publisher still waits 20 s after NATS stopped taking its bytes (WriteTimeout %v): %+v", writeTimeout, sender.Stats())
	}
	if n > 60000 {
		t.Fatalf("%d events of 16 KiB went, and no write waited: the path never stopped", n)
	}
	waitFor(t, "the sender to see the connection gone", func() bool { return !sender.Connected() })
	waitFor(t, "the log to say the connection went", func() bool {
		return strings.Contains(log.String(), "disconnected from NATS")
	})

	p.resume()
	waitFor(t, "the sender to reconnect", sender.Connected)
	publish(n) // the last: the receiver counts what it missed before it
	n++
	waitFor(t, "every event delivered or counted missed", func() bool {
		return got.Load()+int64(receiver.Stats().MissedIn) >= int64(n) && last.Load() == int64(n-1)
	})
	st, rst := sender.Stats(), receiver.Stats()
	if st.Stalled {
		t.Error("the link is back, and Stats still says it is stalled")
	}
	t.Logf("%d events: %d delivered, %d missed; the sender: %d reconnects, %d dropped", n, got.Load(), rst.MissedIn, st.Reconnects, st.Dropped)
	if got.Load()+int64(rst.MissedIn) != int64(n) || disorder.Load() != 0 || st.Dropped != 0 || st.Reconnects == 0 {
		t.Errorf("%d events: %d delivered (%d out of order), %d missed; the sender: %d dropped, %d reconnects",
			n, got.Load(), disorder.Load(), rst.MissedIn, st.Dropped, st.Reconnects)
	}
}

// TestSilentNATS: a NATS server that stops answering, with nothing to
// write to it but heartbeats, is left after two to three pings without
// an answer (pingInterval: 1 s apart here, 5 s at least outside the
// tests), not nats.go's minutes: the events that come next wait in the
// buffer, and reach the receiver once the link has reconnected.
func TestSilentNATS(t *testing.T) {
	floor := pingFloor
	pingFloor = time.Second
	t.Cleanup(func() { pingFloor = floor })
	ns := startNATS(t)
	p := newStallProxy(t, ns.Addr().String())
	base := Config{Heartbeat: 20 * time.Millisecond, PeerTimeout: 500 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	node := uuid.New()
	scfg := base
	scfg.URL, scfg.Node, scfg.Buffer = p.url(), node, 1<<20
	sender, err := Open(scfg, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sender.Close)
	got := make(chan byte, 16)
	rcfg := base
	rcfg.URL, rcfg.Node = ns.ClientURL(), uuid.New()
	receiver, err := Open(rcfg, func(ev *Event) { got <- ev.Data[0] })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(receiver.Close)
	receiver.SetChannels([]string{"A"})
	waitFor(t, "the sender to hear the receiver", func() bool { return len(sender.Peers()) == 1 })

	p.pause()
	start := time.Now()
	waitFor(t, "the sender to leave the silent NATS server", func() bool { return !sender.Connected() })
	t.Logf("left after %v", time.Since(start).Round(time.Millisecond))
	publishA(t, sender, false, node, []byte{7}) // a msgpack fixint
	// nats.go holds the connection's figures while it tries to connect
	// (Stats.Stalled): the test waits for figures read since.
	waitFor(t, "the event to wait in the buffer", func() bool {
		st := sender.Stats()
		return !st.Stalled && st.Buffered > 0
	})
	if st := sender.Stats(); st.EventsOut != 0 {
		t.Fatalf("disconnected: %d events sent; want the event kept", st.EventsOut)
	}
	p.resume()
	select {
	case d := <-got:
		if d != 7 {
			t.Fatalf("got event %d, want 7", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the kept event did not come: %+v", sender.Stats())
	}
}

// stallProxy forwards TCP connections from a loopback port to a NATS
// server. Paused, it stops reading from its clients, as a NATS server
// that takes nothing, or a path that loses every packet, would. Its
// answers held (holdAnswers), it stops reading from the NATS server.
type stallProxy struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup

	mu       sync.Mutex
	resumed  chan struct{} // closed while not paused
	answered chan struct{} // closed while the answers are not held
	conns    []net.Conn
	closed   bool // close has begun: a connection accepted now is closed at once
}

// newStallProxy starts a proxy to upstream, closed when the test ends.
func newStallProxy(t *testing.T, upstream string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, upstream: upstream, resumed: make(chan struct{}), answered: make(chan struct{})}
	close(p.resumed)
	close(p.answered)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c, &p.resumed)
		go p.pipe(c, u, &p.answered)
	}
}

// pipe copies from src to dst, reading only while the channel gate
// points to is closed.
func (p *stallProxy) pipe(dst, src net.Conn, gate *chan struct{}) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		open := *gate
		p.mu.Unlock()
		<-open
		n, err := src.Read(buf)
		if _, werr := dst.Write(buf[:n]); werr != nil || err != nil {
			return
		}
	}
}

func (p *stallProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resumed = make(chan struct{})
}

// resume ends the pause. The connections of the pause are cut, and
// what their clients wrote meanwhile is lost, as on a path that lost
// it: a connection opened after it carries bytes again.
func (p *stallProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	select {
	case <-p.resumed:
	default:
		close(p.resumed)
	}
}

// holdAnswers stops what the NATS server sends from reaching the
// clients, until answer; the connections stay up.
func (p *stallProxy) holdAnswers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answered = make(chan struct{})
}

// answer ends holdAnswers: what the NATS server sent meanwhile goes on.
func (p *stallProxy) answer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.answered:
	default:
		close(p.answered)
	}
}

func (p *stallProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.answer()
	p.resume()
	p.wg.Wait()
}
