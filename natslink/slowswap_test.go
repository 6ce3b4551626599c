package natslink

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// TestSwapKeepsOrderOnSlowPath: the path from the old link to NATS
// carries its bytes two seconds late, longer than the old link waited
// for NATS to confirm a flush. A reload swaps the link for one on a
// prompt path while a publisher streams, as the server's do: to the old
// link until it is closed, then to the new one. Every event comes once
// and in order: the swap waits until NATS has taken the old link's
// messages before the new one sends.
func TestSwapKeepsOrderOnSlowPath(t *testing.T) {
	bothFormats(t, testSwapKeepsOrderOnSlowPath)
}

func testSwapKeepsOrderOnSlowPath(t *testing.T, pack bool) {
	ns := startNATS(t)
	p := newDelayProxy(t, ns.Addr().String())
	node := uuid.New()
	cfg := Config{Node: node, Pack: pack, Buffer: 1 << 20, Heartbeat: 20 * time.Millisecond, PeerTimeout: 500 * time.Millisecond,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	old := cfg
	old.URL = p.url()
	a, err := Open(old, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close) // CloseInto closed it, unless the test stopped before
	waitFor(t, "the old link to connect", a.Connected)
	next := cfg
	next.URL, next.Held = ns.ClientURL(), true
	b, err := Open(next, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	waitFor(t, "the new link to connect", b.Connected)
	sub := subscribeA(t, ns.ClientURL())

	p.delay.Store(int64(2 * time.Second))
	// The publisher numbers its events (a bin 8 of four bytes); it goes to the new
	// link when the old one says it is closed, and stops after 200
	// events on the new one.
	var cur atomic.Pointer[Link]
	cur.Store(a)
	sent := make(chan int, 1)
	go func() {
		i, onNew := 0, 0
		for onNew < 200 {
			l := cur.Load()
			data := []byte{0xc4, 4, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			var err error
			if pack {
				err = l.PublishFrame([]byte("A"), wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node,
					Sender: node, Channel: "A", Event: "e", Data: data}))
			} else {
				err = l.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: data}, uuid.Nil)
			}
			if errors.Is(err, ErrClosed) && l == a {
				for cur.Load() == a {
					time.Sleep(time.Millisecond)
				}
				continue
			}
			if err != nil {
				t.Error(err)
				break
			}
			if l == b {
				onNew++
			}
			i++
			if i%16 == 0 {
				time.Sleep(time.Millisecond) // a stream, not a burst that fills the buffer
			}
		}
		sent <- i
	}()
	time.Sleep(200 * time.Millisecond) // the stream is under way on the slow path
	a.CloseInto(b)
	cur.Store(b)
	b.Release()
	n := <-sent
	for i, d := range eventsOf(t, sub, pack, n, b) {
		if got := int(d[2])<<24 | int(d[3])<<16 | int(d[4])<<8 | int(d[5]); got != i {
			t.Fatalf("event %d is %d: the new link overtook the old one", i, got)
		}
	}
	if st := a.Stats(); st.Dropped != 0 {
		t.Errorf("the old link dropped %d events", st.Dropped)
	}
}

// TestCloseOnSlowPathWarns: when NATS does not confirm a closing link's
// last messages within closeFlushWait, the link says so; the messages
// still arrive, late.
func TestCloseOnSlowPathWarns(t *testing.T) {
	ns := startNATS(t)
	p := newDelayProxy(t, ns.Addr().String())
	node := uuid.New()
	var log syncBuffer
	a, err := Open(Config{URL: p.url(), Node: node, Heartbeat: 20 * time.Millisecond, PeerTimeout: 500 * time.Millisecond,
		ReconnectWait: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&log, nil))}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	waitFor(t, "the link to connect", a.Connected)
	sub := subscribeA(t, ns.ClientURL())
	p.delay.Store(int64(2 * closeFlushWait))
	publishA(t, a, false, node, []byte{0x91, 7})
	a.Close()
	if !strings.Contains(log.String(), "NATS did not confirm the last messages of the closing NATS link in time") {
		t.Errorf("no warning of the unconfirmed messages; the log:\n%s", log.String())
	}
	if d := eventsOf(t, sub, false, 1, a)[0]; d[1] != 7 {
		t.Errorf("got event %d, want 7", d[1])
	}
}

// delayProxy forwards TCP connections from a loopback port to a NATS
// server; what a client writes reaches the server delay later (0 at
// first), in order, as on a slow path. What comes back is not delayed.
type delayProxy struct {
	ln       net.Listener
	upstream string
	delay    atomic.Int64 // nanoseconds, for the bytes read from now on
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

// newDelayProxy starts a proxy to upstream, closed when the test ends.
func newDelayProxy(t *testing.T, upstream string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *delayProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *delayProxy) accept() {
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
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.late(u, c)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := u.Read(buf)
				if _, werr := c.Write(buf[:n]); werr != nil || err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

// late copies from src to dst, each read written delay after it was
// read; once src ends, what it read still goes, then dst is closed.
func (p *delayProxy) late(dst, src net.Conn) {
	defer p.wg.Done()
	type chunk struct {
		b  []byte
		at time.Time
	}
	chunks := make(chan chunk, 1<<12)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now().Add(time.Duration(p.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	for c := range chunks {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range chunks {
			}
			return
		}
	}
}

func (p *delayProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
