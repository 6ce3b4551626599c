// Package routertest starts real netcluster servers for tests: on
// throwaway sockets in a short temporary directory, with their logs kept
// for the test to read, shut down when the test ends. Like httptest, it
// runs the real thing, not a fake.
package routertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
)

// LogBuffer collects a server's logs so that tests can check the reasons
// it gives; a failed test prints them.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends to the buffer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Server is a router.Server on throwaway sockets.
type Server struct {
	*router.Server
	Dir      string
	Template string
	Logs     *LogBuffer
	// Level is the level of the server's log (debug at first), which the
	// control request loglevel changes.
	Level *slog.LevelVar
}

// ShortTempDir makes a temporary directory with a short path: socket
// paths must stay under about 104 bytes, and t.TempDir's can be long.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// NewServer starts a server whose configuration is the given HuJSON
// object members, with the socket template pointing into a fresh
// directory.
func NewServer(t testing.TB, members string) *Server {
	t.Helper()
	return NewServerIn(t, ShortTempDir(t), members)
}

// NewServerIn is NewServer with the sockets in dir.
func NewServerIn(t testing.TB, dir, members string) *Server {
	t.Helper()
	return NewServerWith(t, dir, dir+"/{channel}.sock", members)
}

// NewServerWith is NewServer with the socket template given, dir being
// the directory it points into, and options changed by each of opts.
func NewServerWith(t testing.TB, dir, template, members string, opts ...func(*router.Options)) *Server {
	t.Helper()
	ts := &Server{Dir: dir, Template: template, Logs: &LogBuffer{}, Level: new(slog.LevelVar)}
	cfg := ts.ParseConfig(t, members)
	ts.Level.Set(slog.LevelDebug)
	log := slog.New(slog.NewTextHandler(ts.Logs, &slog.HandlerOptions{Level: ts.Level}))
	o := router.Options{Logger: log, LogLevel: ts.Level, HandshakeTimeout: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	srv, err := router.Start(cfg, o)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	ts.Server = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.Logs)
		}
	})
	return ts
}

// ParseConfig parses a configuration of the given HuJSON object members with
// the server's socket template, as NewServer does: ready for Reload.
func (ts *Server) ParseConfig(t testing.TB, members string) *router.Config {
	t.Helper()
	text := fmt.Sprintf("{\n\"socket\": %q,\n%s\n}", ts.Template, members)
	cfg, err := router.Parse("test.json", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	return cfg
}

// Control sends the control request cmd (without its "nc-control-"
// prefix) with args on c, a client of the control channel, and returns
// the answer's map. It fails the test if no answer comes within 10 s;
// an answer holding "error" is returned like any other.
func Control(t testing.TB, c *bus.Client, cmd string, args any) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, router.ControlPrefix+cmd, args)
	if err != nil {
		t.Fatalf("control request %s: %v", cmd, err)
	}
	if want := router.ControlPrefix + cmd + bus.ReplySuffix; reply.Event != want {
		t.Fatalf("control request %s: answered with %q, want %q", cmd, reply.Event, want)
	}
	var out map[string]any
	if err := reply.Decode(&out); err != nil {
		t.Fatalf("control request %s: %v", cmd, err)
	}
	return out
}

// Path is the socket path of a channel.
func (ts *Server) Path(channel string) string {
	return strings.ReplaceAll(ts.Template, "{channel}", channel)
}

// Dial connects a client that is closed when the test ends.
func (ts *Server) Dial(t testing.TB, channel string, opts ...bus.Option) *bus.Client {
	t.Helper()
	opts = append([]bus.Option{bus.SocketTemplate(ts.Template), bus.Name(t.Name())}, opts...)
	c, err := bus.Dial(context.Background(), channel, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", channel, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// WaitFor polls cond until it holds or the deadline passes. Socket tests
// poll to a deadline rather than sleep.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Recorder keeps every message its listener hears.
type Recorder struct {
	mu     sync.Mutex
	msgs   []bus.Message
	counts map[string]int // by event name
}

// Record registers a listener for pattern on c that keeps what it hears.
func Record(t testing.TB, c *bus.Client, pattern string) *Recorder {
	t.Helper()
	r := &Recorder{counts: make(map[string]int)}
	if _, err := c.On(pattern, func(m bus.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.counts[m.Event]++
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

// Events are the names of the events heard so far, in order.
func (r *Recorder) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = m.Event
	}
	return out
}

// Count is how many events of this name were heard.
func (r *Recorder) Count(event string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[event]
}

// Messages are the messages heard so far, in order.
func (r *Recorder) Messages() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Reset forgets what was heard.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs, r.counts = nil, make(map[string]int)
}

// WaitCount waits until n events of this name were heard, for as long
// as they keep coming (WaitProgress): it fails once 10 s pass without
// one more.
func (r *Recorder) WaitCount(t testing.TB, event string, n int) {
	t.Helper()
	count := func() int { return r.Count(event) }
	if !WaitProgress(func() bool { return count() >= n }, count) {
		t.Fatalf("timed out waiting for %d %q events: %d heard, none more for 10 s", n, event, count())
	}
}

// WaitProgress waits until done, for as long as progress keeps changing
// (a long stream under the race detector takes longer than any fixed
// wait), and reports false once progress has stood still for 10 s
// without done.
func WaitProgress[N comparable](done func() bool, progress func() N) bool {
	last, deadline := progress(), time.Now().Add(10*time.Second)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
		if c := progress(); c != last {
			last, deadline = c, time.Now().Add(10*time.Second)
		}
	}
	return true
}

// Fence proves that everything routed to a receiver before now has
// arrived: a second client on the receiver's channel emits a marker, and
// since each client's queue is FIFO, once the marker arrives so has
// everything queued before it.
func Fence(t testing.TB, ts *Server, channel string, r *Recorder) {
	t.Helper()
	f := ts.Dial(t, channel, bus.Name("fence"))
	marker := "fence-" + uuid.NewString()
	if err := f.Emit(marker, nil); err != nil {
		t.Fatal(err)
	}
	r.WaitCount(t, marker, 1)
	f.Close()
}

// FloodUntilSlow emits events of 32 KiB from pub, each flushed, until
// the server has dropped a slow consumer on its first channel; it fails
// the test after 1024 of them.
func FloodUntilSlow(t testing.TB, ts *Server, pub *bus.Client) {
	t.Helper()
	blob := make([]byte, 32<<10)
	for i := 0; ts.Channels()[0].Stats.SlowConsumers == 0; i++ {
		if i == 1024 {
			t.Fatal("1024 events of 32 KiB and the stalled client was not dropped")
		}
		if err := pub.Emit("blob", blob); err != nil {
			t.Fatal(err)
		}
		pub.Flush(context.Background())
	}
}

// StacksShow reports whether some goroutine of this process is in state
// (the start of what its stack header's brackets hold, such as "[IO
// wait"; "" for any) with call among its frames: how a test tells that
// a goroutine waits where it means it to, rather than guessing from
// time.
func StacksShow(state, call string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, state) && strings.Contains(g, call) {
			return true
		}
	}
	return false
}
