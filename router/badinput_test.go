package router_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// rawConn is a client that speaks frames by hand, to send what the bus
// package never would.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	fr *wire.FrameReader
	id uuid.UUID
	w  wire.Welcome
}

func dialRaw(t testing.TB, ts *routertest.Server, channel string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", ts.Path(channel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, fr: wire.NewFrameReader(bufio.NewReader(nc), wire.MaxFrameLimit), id: uuid.New()}
}

func (rc *rawConn) write(p []byte) {
	rc.t.Helper()
	if _, err := rc.nc.Write(p); err != nil {
		rc.t.Fatal(err)
	}
}

// hello does the handshake.
func (rc *rawConn) hello() {
	rc.t.Helper()
	rc.write(wire.AppendHello(nil, &wire.Hello{Version: 1, ClientID: rc.id, Name: "raw"}))
	frame, err := rc.fr.ReadFrame()
	if err != nil {
		rc.t.Fatal(err)
	}
	if rc.w, err = wire.DecodeWelcome(frame[wire.HeaderLen:]); err != nil {
		rc.t.Fatal(err)
	}
}

// event builds a well-formed event frame from this client.
func (rc *rawConn) event(name string) []byte {
	m := wire.Message{ID: uuid.New(), Origin: rc.w.Node, Sender: rc.id, Channel: rc.w.Channel, Event: name}
	return wire.AppendEvent(nil, &m)
}

// closedWith reads until the server's error frame, then expects the
// connection to end, and returns the error frame.
func (rc *rawConn) closedWith() wire.ErrorFrame {
	rc.t.Helper()
	for {
		frame, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("connection ended without an error frame: %v", err)
		}
		body := frame[wire.HeaderLen:]
		if t, _ := wire.TypeOf(body); t != wire.FrameError {
			continue
		}
		e, err := wire.DecodeError(body)
		if err != nil {
			rc.t.Fatal(err)
		}
		if _, err := rc.fr.ReadFrame(); !errors.Is(err, io.EOF) {
			rc.t.Errorf("after the error frame: %v, want EOF", err)
		}
		return e
	}
}

func frameOf(body ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestBadInput sends one bad thing on one connection and checks that the
// server closes that connection with an error frame and a logged reason,
// while another client of the channel goes on receiving.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		hello  bool // do the handshake first
		send   func(rc *rawConn) []byte
		code   bus.ErrorCode
		reason string // in the error frame and the log
	}{
		{"garbage instead of hello", false, func(*rawConn) []byte { return []byte("\x00\x00\x00\x05GET /") }, bus.CodeProtocol, "hello"},
		{"event before hello", false, func(rc *rawConn) []byte { return rc.event("x") }, bus.CodeProtocol, "first frame must be a hello"},
		{"hello of version 0", false, func(rc *rawConn) []byte {
			return wire.AppendHello(nil, &wire.Hello{Version: 0, ClientID: rc.id})
		}, bus.CodeVersion, "version 0"},
		{"hello with the zero client id", false, func(*rawConn) []byte {
			return wire.AppendHello(nil, &wire.Hello{Version: 1})
		}, bus.CodeProtocol, "client id is zero"},
		{"oversized hello", false, func(*rawConn) []byte { return []byte{0, 0x10, 0, 0} }, bus.CodeFrameTooBig, "frame too big"},
		{"malformed frame", true, func(*rawConn) []byte { return frameOf(0x93, 0x03, 0xc1, 0xc1) }, bus.CodeProtocol, "malformed frame"},
		{"empty frame", true, func(*rawConn) []byte { return frameOf() }, bus.CodeProtocol, "empty frame"},
		{"frame over maxframe", true, func(*rawConn) []byte { return []byte{0, 0, 0x10, 0x01} }, bus.CodeFrameTooBig, "limit is 4096"},
		{"second hello", true, func(rc *rawConn) []byte {
			return wire.AppendHello(nil, &wire.Hello{Version: 1, ClientID: rc.id})
		}, bus.CodeProtocol, "unexpected hello frame"},
		{"event for another channel", true, func(rc *rawConn) []byte {
			m := wire.Message{ID: uuid.New(), Origin: rc.w.Node, Sender: rc.id, Channel: "B", Event: "x"}
			return wire.AppendEvent(nil, &m)
		}, bus.CodeProtocol, "names channel"},
		{"event with a forged sender", true, func(rc *rawConn) []byte {
			m := wire.Message{ID: uuid.New(), Origin: rc.w.Node, Sender: uuid.New(), Channel: "A", Event: "x"}
			return wire.AppendEvent(nil, &m)
		}, bus.CodeProtocol, "sender"},
		{"event with a forged origin", true, func(rc *rawConn) []byte {
			m := wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: rc.id, Channel: "A", Event: "x"}
			return wire.AppendEvent(nil, &m)
		}, bus.CodeProtocol, "origin"},
		{"event with the zero id", true, func(rc *rawConn) []byte {
			m := wire.Message{Origin: rc.w.Node, Sender: rc.id, Channel: "A", Event: "x"}
			return wire.AppendEvent(nil, &m)
		}, bus.CodeProtocol, "id is zero"},
		{"event name not UTF-8", true, func(rc *rawConn) []byte { return rc.event("\xff\xfe") }, bus.CodeProtocol, "UTF-8"},
		{"frame type unreadable", true, func(*rawConn) []byte { return frameOf(0x91, 0xc1) }, bus.CodeProtocol, "frame type"},
		{"event with trailing garbage", true, func(rc *rawConn) []byte {
			f := append(rc.event("x"), 0xc0)
			binary.BigEndian.PutUint32(f, uint32(len(f)-wire.HeaderLen))
			return f
		}, bus.CodeProtocol, "after the frame"},
		{"event whose to is not an id", true, func(rc *rawConn) []byte {
			// The to field as a str: the event's array gets two more
			// fields, "x" and nil.
			f := append(rc.event("x"), 0xa1, 'x', 0xc0)
			f[wire.HeaderLen] += 2
			binary.BigEndian.PutUint32(f, uint32(len(f)-wire.HeaderLen))
			return f
		}, bus.CodeProtocol, "to: want nil or a 16-byte id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := routertest.NewServer(t, `"maxframe": 4096, "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
			good := ts.Dial(t, "A")
			rec := routertest.Record(t, good, "ok")
			onB := routertest.Record(t, ts.Dial(t, "B"), ".*")
			pub := ts.Dial(t, "A")

			rc := dialRaw(t, ts, "A")
			if tt.hello {
				rc.hello()
			}
			rc.write(tt.send(rc))
			e := rc.closedWith()
			if e.Code != tt.code || !strings.Contains(e.Message, tt.reason) {
				t.Errorf("error frame %v %q; want %v containing %q", e.Code, e.Message, tt.code, tt.reason)
			}
			routertest.WaitFor(t, "the reason in the log", func() bool {
				return strings.Contains(ts.Logs.String(), "closing client") && strings.Contains(ts.Logs.String(), tt.reason)
			})
			// Everyone else is unharmed.
			for range 3 {
				pub.Emit("ok", nil)
			}
			rec.WaitCount(t, "ok", 3)
			routertest.Fence(t, ts, "B", onB)
			if n := onB.Count("x"); n != 0 {
				t.Errorf("the bad connection's event reached B %d times", n)
			}
		})
	}
}

// TestHandshakeTimeout starts a hello and never finishes it. (A
// connection that says nothing at all is a listen-only JSON client: see
// TestJSONListenOnly.)
func TestHandshakeTimeout(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	rc := dialRaw(t, ts, "A")
	start := time.Now()
	rc.write([]byte{0, 0})
	e := rc.closedWith()
	if e.Code != bus.CodeHandshake {
		t.Errorf("error frame %v %q, want a handshake timeout", e.Code, e.Message)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("closed after %v, before the 2 s handshake time", d)
	}
}

// TestSlowConsumer connects a client that never reads to a channel with
// overflow "drop". The server must drop it once its queue passes
// maxpending, while a reading client gets every event and the publisher
// is never held.
func TestSlowConsumer(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 262144, "channels": {"A": {"overflow": "drop"}}`)
	slow := dialRaw(t, ts, "A")
	slow.hello() // and never read again
	fast := ts.Dial(t, "A")
	rec := routertest.Record(t, fast, "blob")
	pub := ts.Dial(t, "A")
	blob := strings.Repeat("x", 32<<10)
	const n = 256 // 8 MiB in all: far past maxpending plus the socket buffers
	for i := range n {
		if err := pub.Emit("blob", blob); err != nil {
			t.Fatal(err)
		}
		// Pace the publisher to the reading client: each 32 KiB event
		// counts as its 40 KiB pooled buffer in maxpending, so the
		// reading client may have six pending at most.
		if i%2 == 1 {
			rec.WaitCount(t, "blob", i+1)
		}
	}
	rec.WaitCount(t, "blob", n)
	routertest.WaitFor(t, "the slow consumer to be dropped", func() bool {
		return ts.Channels()[0].Stats.SlowConsumers == 1
	})
	if !strings.Contains(ts.Logs.String(), "slow consumer") {
		t.Error("no slow-consumer reason in the log")
	}
	if st := ts.Channels()[0].Stats; st.Stalls != 0 || st.StallTimeouts != 0 {
		t.Errorf("%d stalls, %d stall timeouts: overflow drop must never hold a publisher", st.Stalls, st.StallTimeouts)
	}
	// The slow client is told why (an error frame), and closed once that
	// is written or, as this one never reads, after errorGrace.
	routertest.WaitFor(t, "the slow client to be closed", func() bool {
		return ts.Channels()[0].Stats.Clients == 2
	})
	// The slow client's socket is closed: reading it to the end returns
	// what the kernel held, then EOF.
	slow.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, slow.nc); err != nil {
		t.Errorf("draining the slow client's socket: %v, want EOF", err)
	}
}

// TestEndInsideFrame has a client leave halfway through a frame: the
// server logs it, routes nothing of it, and serves the others.
func TestEndInsideFrame(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	rec := routertest.Record(t, ts.Dial(t, "A"), ".*")
	rc := dialRaw(t, ts, "A")
	rc.hello()
	f := rc.event("partial")
	rc.write(f[:len(f)-3])
	rc.nc.Close()
	routertest.WaitFor(t, "the reason in the log", func() bool {
		return strings.Contains(ts.Logs.String(), "connection ended inside a frame")
	})
	routertest.Fence(t, ts, "A", rec)
	if n := rec.Count("partial"); n != 0 {
		t.Errorf("the partial event was delivered %d times", n)
	}
}

// TestSlowConsumerTold has a client fall behind while its listener
// stalls, then read again: the server dropped it as a slow consumer, and
// the client learns why from the error frame that follows what it was
// sent, not from a bare end of the connection.
func TestSlowConsumerTold(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 262144, "channels": {"A": {"overflow": "drop"}}`)
	stall := make(chan struct{})
	slow, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(ts.Template), bus.QueueLen(1), bus.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.On("blob", func(bus.Message) { <-stall }); err != nil {
		t.Fatal(err)
	}
	pub := ts.Dial(t, "A")
	routertest.FloodUntilSlow(t, ts, pub)
	close(stall) // read again, at once: the error frame waits errorGrace at most
	select {
	case <-slow.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the slow client's connection did not end")
	}
	var se *bus.ServerError
	if err := slow.Err(); !errors.As(err, &se) || se.Code != bus.CodeSlowConsumer || !strings.Contains(se.Message, "maxpending") {
		t.Errorf("the slow client ended with %v; want a ServerError with code %d (slow consumer)", err, bus.CodeSlowConsumer)
	} else if n := strings.Count(err.Error(), bus.CodeSlowConsumer.String()); n != 1 {
		t.Errorf("the error says %q %d times, want once: %v", bus.CodeSlowConsumer, n, err)
	}
}

// TestDuplicateClientID has a second client claim the id of one already
// connected: it is refused, so that it cannot take the first one's
// replies, and the first one still gets them.
func TestDuplicateClientID(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	first := ts.Dial(t, "A")
	replier := ts.Dial(t, "A")
	if _, err := replier.On("ask", func(m bus.Message) { replier.Reply(m, "yours") }); err != nil {
		t.Fatal(err)
	}

	thief := dialRaw(t, ts, "A")
	thief.id = first.ID()
	thief.write(wire.AppendHello(nil, &wire.Hello{Version: 1, ClientID: thief.id, Name: "thief"}))
	if e := thief.closedWith(); e.Code != bus.CodeHandshake || !strings.Contains(e.Message, "in use") {
		t.Errorf("the second client with the id got error %d %q; want CodeHandshake, id in use", e.Code, e.Message)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := first.Request(ctx, "ask", nil)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := reply.Decode(&s); err != nil || s != "yours" {
		t.Errorf("reply %q, %v", s, err)
	}
}
