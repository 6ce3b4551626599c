package channel_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A test binary run again by routertest.StartChild is a client.
	routertest.ChildMain()
	dialAsMain()
	goleak.VerifyTestMain(checkBuffers{m})
}

// checkBuffers fails a test binary whose channels, all closed, still hold
// pooled frame buffers: references taken and never released. Only
// builds with -tags ncpoison count them.
type checkBuffers struct{ m *testing.M }

func (c checkBuffers) Run() int {
	code := c.m.Run()
	if n := channel.LiveBuffers(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "%d pooled frame buffers still held after every test\n", n)
		return 1
	}
	return code
}

func listen(t *testing.T, cfg channel.Config) *channel.Channel {
	t.Helper()
	if cfg.Path == "" {
		dir, err := os.MkdirTemp("", "nc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		cfg.Path = filepath.Join(dir, cfg.Name+".sock")
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	ch, err := channel.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}

func dial(t *testing.T, ch *channel.Channel, name string) *bus.Client {
	t.Helper()
	c, err := bus.Dial(context.Background(), ch.Name(), bus.Socket(ch.Path()), bus.Name(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDefaultHandler checks that a channel with no Handler sends each
// event to its other clients, and counts what it does.
func TestDefaultHandler(t *testing.T) {
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "A", Node: node})
	got := make(chan bus.Message, 1)
	sub := dial(t, ch, "sub")
	sub.On("hi", func(m bus.Message) { got <- m })
	pub := dial(t, ch, "pub")
	if pub.Node() != node {
		t.Errorf("welcome node %v, want %v", pub.Node(), node)
	}
	pub.Emit("hi", 1)
	select {
	case m := <-got:
		if m.Sender != pub.ID() || m.Origin != node {
			t.Errorf("message sender %v origin %v; want %v %v", m.Sender, m.Origin, pub.ID(), node)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	st := ch.Stats()
	if st.Clients != 2 || st.EventsIn != 1 || st.FramesOut != 1 {
		t.Errorf("stats %+v; want 2 clients, 1 event in, 1 frame out", st)
	}
}

// TestClientInfo checks what the channel knows of a client: its name and
// id from the handshake, and its pid and uid from the kernel.
func TestClientInfo(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A"})
	// The client runs in a process of its own, so that the pid the
	// channel learns can only be the client's, not this process's.
	c := routertest.StartChild(t, ch.Path(), "A", "inspected", 0)
	routertest.WaitFor(t, "the client to be listed", func() bool { return len(ch.ClientInfos()) == 1 })
	ci := ch.ClientInfos()[0]
	if ci.Name != "inspected" || ci.ID != c.ID {
		t.Errorf("client %q %v; want %q %v", ci.Name, ci.ID, "inspected", c.ID)
	}
	if _, err := os.Stat("/proc/self"); err == nil { // Linux: peer credentials
		if ci.PID != c.PID || ci.UID != os.Getuid() {
			t.Errorf("client pid %d uid %d; want %d %d (this process is %d)", ci.PID, ci.UID, c.PID, os.Getuid(), os.Getpid())
		}
	}
	if time.Since(ci.Since) > time.Minute || ci.Since.After(time.Now()) {
		t.Errorf("connected since %v", ci.Since)
	}
}

// TestInUse listens twice on one path.
func TestInUse(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A"})
	_, err := channel.Listen(channel.Config{Name: "A", Path: ch.Path(), Logger: slog.New(slog.DiscardHandler)})
	var e *channel.InUseError
	if !errors.As(err, &e) || !errors.Is(err, channel.ErrInUse) || e.Path != ch.Path() {
		t.Fatalf("second Listen: %v; want an InUseError for %s", err, ch.Path())
	}
	if _, err := os.Stat("/proc/self"); err == nil && e.PID != os.Getpid() {
		t.Errorf("InUseError names pid %d, want %d", e.PID, os.Getpid())
	}
}

// TestSetLimits lowers maxframe on a running channel: the next frame over
// it closes its sender.
func TestSetLimits(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A"})
	errs := make(chan error, 4)
	pub, err := bus.Dial(context.Background(), "A", bus.Socket(ch.Path()), bus.ErrorHandler(func(err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ch.SetLimits(2048, 1<<20)
	pub.Emit("big", strings.Repeat("x", 4096)) // the client still believes 1 MiB
	var se *bus.ServerError
	select {
	case err := <-errs:
		if !errors.As(err, &se) || se.Code != bus.CodeFrameTooBig {
			t.Errorf("got %v, want a frame-too-big error frame", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the oversized frame was not refused")
	}
	if ch.Stats().TooBig != 1 {
		t.Errorf("TooBig = %d, want 1", ch.Stats().TooBig)
	}
}

func TestInvalidName(t *testing.T) {
	if _, err := channel.Listen(channel.Config{Name: "../x", Path: "/nonexistent/x.sock"}); err == nil {
		t.Error("Listen with an invalid channel name: no error")
	}
}

// TestSocketDirectory checks how Listen treats the socket's directory: it
// creates a missing one for owner and group only, and refuses one that
// anyone may plant files in.
func TestSocketDirectory(t *testing.T) {
	base, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	logger := slog.New(slog.DiscardHandler)

	fresh := filepath.Join(base, "fresh", "dir")
	ch, err := channel.Listen(channel.Config{Name: "A", Path: filepath.Join(fresh, "A.sock"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("created directory: %v, %v; want mode 0750", fi.Mode().Perm(), err)
	}

	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777) // past the umask
	if _, err := channel.Listen(channel.Config{Name: "A", Path: filepath.Join(open, "A.sock"), Logger: logger}); err == nil || !strings.Contains(err.Error(), "writable by everyone") {
		t.Errorf("world-writable directory: %v, want a refusal", err)
	}

	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o777)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	ch, err = channel.Listen(channel.Config{Name: "A", Path: filepath.Join(sticky, "A.sock"), Logger: logger})
	if err != nil {
		t.Errorf("world-writable directory with the sticky bit, like /tmp: %v", err)
	} else {
		ch.Close()
	}
}

// TestLongClientName checks that the server keeps only the first 128
// bytes of a client's name, cut between characters.
func TestLongClientName(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A"})
	dial(t, ch, strings.Repeat("a", 127)+"é"+strings.Repeat("b", 1000))
	routertest.WaitFor(t, "the client to be listed", func() bool { return len(ch.ClientInfos()) == 1 })
	if got, want := ch.ClientInfos()[0].Name, strings.Repeat("a", 127); got != want {
		t.Errorf("kept name %q (%d bytes), want %q", got, len(got), want)
	}
}

// TestJSONReply answers a JSON client's request the way the control
// channel does, with Conn.Send to the asker alone: the answer reaches it
// as JSON, addressed to it and naming the request.
func TestJSONReply(t *testing.T) {
	node := uuid.New()
	ch := listen(t, channel.Config{Name: "control", Node: node, Handler: func(from *channel.Conn, ev *channel.Event) {
		if string(ev.Header.Event) != "nc-control-ping" {
			return
		}
		reply := wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node, Sender: node, Channel: "control",
			Event: "nc-control-ping-response", Data: []byte{0x81, 0xa2, 'o', 'k', 0xc3}})
		// The request/reply fields after the data: to, re.
		to, re := from.ID(), uuid.UUID(ev.Header.ID)
		reply[wire.HeaderLen] = 0x99
		reply = append(append(reply, 0xc4, 16), to[:]...)
		reply = append(append(reply, 0xc4, 16), re[:]...)
		binary.BigEndian.PutUint32(reply, uint32(len(reply)-wire.HeaderLen))
		from.Send(reply)
	}})
	nc, err := net.Dial("unix", ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	id := uuid.New()
	fmt.Fprintf(nc, `{"channel":"control","event":"nc-control-ping","id":%q}`+"\x00", id)
	text, err := bufio.NewReader(nc).ReadBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(text[:len(text)-1], &m); err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	infos := ch.ClientInfos()
	if len(infos) != 1 || infos[0].Protocol != "json" {
		t.Fatalf("clients %+v, want one JSON client", infos)
	}
	if m["event"] != "nc-control-ping-response" || m["re"] != id.String() || m["to"] != infos[0].ID.String() ||
		m["broadcast"] != false || m["emmiteruuid"] != node.String() || fmt.Sprint(m["data"]) != "map[ok:true]" {
		t.Errorf("the asker got %v; want the response to it, re %v", m, id)
	}
}

// TestReadBufferGrowth sends events smaller and larger than a
// connection's first read buffer, across its move to the large one,
// with a hello larger than the first buffer: each arrives whole, in
// order.
func TestReadBufferGrowth(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A"})
	got := make(chan []byte, 64)
	sub := dial(t, ch, "sub")
	if _, err := sub.On("sized", func(m bus.Message) {
		var b []byte
		if err := m.Decode(&b); err != nil {
			t.Error(err)
		}
		got <- b
	}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, ch, strings.Repeat("p", 2000))
	sizes := []int{10, 600, 3000, 40000, 300, 5000}
	const n = 48
	for i := range n {
		if err := pub.Emit("sized", bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case b := <-got:
			if want := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)]); !bytes.Equal(b, want) {
				t.Fatalf("event %d: %d bytes starting %v, want %d bytes of %d", i, len(b), b[:min(len(b), 4)], len(want), i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d events arrived", i, n)
		}
	}
}

// TestPaused: a channel opened Paused holds the clients that connect in
// its socket's backlog, serving none of them (no welcome, no event
// routed) until Start; then it serves them. A server opens its channels
// so, and starts them once their routes are in place.
func TestPaused(t *testing.T) {
	var handled atomic.Int64
	ch := listen(t, channel.Config{Name: "A", Paused: true, Handler: func(*channel.Conn, *channel.Event) { handled.Add(1) }})
	dialed := make(chan *bus.Client, 1)
	go func() {
		c, err := bus.Dial(context.Background(), "A", bus.Socket(ch.Path()), bus.Name("early"))
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	select {
	case <-dialed:
		t.Fatal("a paused channel welcomed a client")
	case <-time.After(200 * time.Millisecond):
	}
	if n := len(ch.ClientInfos()); n != 0 {
		t.Fatalf("a paused channel has %d clients", n)
	}
	ch.Start()
	c := <-dialed
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	if err := c.Emit("e", 1); err != nil {
		t.Fatal(err)
	}
	c.Flush(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for handled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if handled.Load() != 1 {
		t.Errorf("after Start, %d events handled, want 1", handled.Load())
	}
}
