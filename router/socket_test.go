package router_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

func parse(t testing.TB, text string) *router.Config {
	t.Helper()
	cfg, err := router.Parse("test.json", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSecondServerRefused starts a second server on the same sockets: it
// must refuse, naming the process that holds them, and leave the first
// one serving, its clients connected.
func TestSecondServerRefused(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}, "B": {}}`)
	sub := ts.DialWatched(t, "B")
	rec := routertest.Record(t, sub.Client, "still")

	cfg := parse(t, fmt.Sprintf(`{"socket": %q, "channels": {"A": {}, "B": {}}}`, ts.Template))
	_, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	var inUse *channel.InUseError
	if !errors.Is(err, channel.ErrInUse) || !errors.As(err, &inUse) {
		t.Fatalf("second server: %v, want ErrInUse", err)
	}
	if inUse.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("error %q names pid %d, want this process's %d", err, inUse.PID, os.Getpid())
	}
	for _, name := range []string{"A", "B", "control"} {
		if fi, err := os.Stat(ts.Path(name)); err != nil || fi.Mode().Type() != fs.ModeSocket {
			t.Errorf("socket %s after the refused start: %v", name, err)
		}
	}
	ts.Dial(t, "B").Emit("still", nil)
	rec.WaitCount(t, "still", 1)
	ts.CheckKept(t, sub)
}

// TestStaleSocket leaves socket files behind as a killed server would;
// a new server must replace them and say so.
func TestStaleSocket(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	for _, name := range []string{"A", "control"} {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, name+".sock"), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
	}
	ts := routertest.NewServerIn(t, dir, `"channels": {"A": {}}`)
	if n := strings.Count(ts.Logs.String(), "replaced a stale socket"); n != 2 {
		t.Errorf("log mentions %d stale sockets, want 2", n)
	}
	rec := routertest.Record(t, ts.Dial(t, "A"), "hi")
	ts.Dial(t, "A").Emit("hi", nil)
	rec.WaitCount(t, "hi", 1)
}

// TestNotASocket refuses to replace a file that is not a socket.
func TestNotASocket(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	path := filepath.Join(dir, "A.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, fmt.Sprintf(`{"socket": %q, "channels": {"A": {}}}`, dir+"/{channel}.sock"))
	if _, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("start over a regular file: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("the file was changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "control.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed start left the control socket behind: %v", err)
	}
}

// TestSocketModes checks the socket files' permissions.
func TestSocketModes(t *testing.T) {
	tests := []struct {
		name    string
		members string
		want    map[string]fs.FileMode
	}{
		{"default", `"channels": {"A": {}}`, map[string]fs.FileMode{"A": 0o660, "control": 0o600}},
		{"configured", `"socketmode": "0666", "channels": {"A": {}}`, map[string]fs.FileMode{"A": 0o666, "control": 0o600}},
		{"owner only", `"socketmode": "0600", "channels": {"A": {}}`, map[string]fs.FileMode{"A": 0o600, "control": 0o600}},
		{"per channel", `"socketmode": "0600", "channels": {"A": {"socketmode": "0640"}, "B": {}}`,
			map[string]fs.FileMode{"A": 0o640, "B": 0o600, "control": 0o600}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := routertest.NewServer(t, tt.members)
			for name, want := range tt.want {
				fi, err := os.Stat(ts.Path(name))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != want {
					t.Errorf("%s: mode %04o, want %04o", name, got, want)
				}
			}
		})
	}
}

// TestShutdownFlushes queues events for a client that is not reading,
// shuts the server down, and then reads: every queued event arrives,
// followed by the reason, and the socket files are gone.
func TestShutdownFlushes(t *testing.T) {
	const n = 200
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	lazy := dialRaw(t, ts, "A")
	lazy.hello()
	witness := routertest.Record(t, ts.Dial(t, "A"), "q")
	pub := ts.Dial(t, "A")
	for i := range n {
		pub.Emit("q", i)
	}
	witness.WaitCount(t, "q", n) // the server has routed them all

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- ts.Shutdown(ctx)
	}()
	got := 0
	for {
		frame, err := lazy.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		body := frame[wire.HeaderLen:]
		if typ, _ := wire.TypeOf(body); typ == wire.FrameError {
			e, _ := wire.DecodeError(body)
			if e.Code != bus.CodeShutdown {
				t.Errorf("last frame: %v %q, want a shutdown notice", e.Code, e.Message)
			}
			break
		}
		m, err := wire.DecodeEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		var i int
		if wire.DecodeData(m.Data, &i); i != got {
			t.Fatalf("event %d arrived as number %d", i, got)
		}
		got++
	}
	if got != n {
		t.Errorf("%d events before the shutdown notice, want %d", got, n)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for _, name := range []string{"A", "control"} {
		if _, err := os.Stat(ts.Path(name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket %s after shutdown: %v, want it removed", name, err)
		}
	}
}

// TestNoLeaks runs a server with clients through a busy minute's worth of
// work and checks that, once all are closed, no goroutine and no file
// descriptor is left.
func TestNoLeaks(t *testing.T) {
	// The runtime opens its poller on first use; have it open already.
	if ln, err := net.Listen("unix", filepath.Join(routertest.ShortTempDir(t), "warm")); err == nil {
		ln.Close()
	}
	fdsBefore := openFDs(t)
	func() {
		cfg := parse(t, fmt.Sprintf(`{"socket": %q, "channels": {"A": {"propagatetochannels": ".*"}, "B": {}}}`,
			routertest.ShortTempDir(t)+"/{channel}.sock"))
		srv, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var clients []*bus.Client
		for i := range 6 {
			c, err := bus.Dial(context.Background(), []string{"A", "B"}[i%2], bus.SocketTemplate(cfg.Socket), bus.Reconnect(false))
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		rec := routertest.Record(t, clients[1], "x")
		for i := range 100 {
			clients[i%6].Emit("x", i)
		}
		// B's client hears all 100: A's 50 by propagation, B's other
		// clients' 33, and its own 17 from its own listener.
		rec.WaitCount(t, "x", 100)
		// A raw connection that goes away mid-handshake, one that breaks
		// the protocol, and a client closed before the server.
		nc, _ := net.Dial("unix", strings.ReplaceAll(cfg.Socket, "{channel}", "A"))
		nc.Close()
		nc, _ = net.Dial("unix", strings.ReplaceAll(cfg.Socket, "{channel}", "A"))
		nc.Write([]byte{0, 0, 0, 1, 0xc1})
		bufio.NewReader(nc).ReadString(0)
		nc.Close()
		clients[0].Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			<-c.Done()
			c.Close()
		}
	}()
	goleak.VerifyNone(t)
	if after := openFDs(t); after != fdsBefore {
		t.Errorf("%d file descriptors open after the test, %d before", after, fdsBefore)
	}
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this system")
	}
	return len(ents)
}

// TestShutdownWhileDialing shuts servers down while clients are still
// connecting: Shutdown must return promptly whatever state each
// connection is in.
func TestShutdownWhileDialing(t *testing.T) {
	for round := range 20 {
		cfg := parse(t, fmt.Sprintf(`{"socket": %q, "channels": {"A": {}}}`, routertest.ShortTempDir(t)+"/{channel}.sock"))
		srv, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var dialers sync.WaitGroup
		for range 4 {
			dialers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(cfg.Socket), bus.Timeout(time.Second))
					if err == nil {
						c.Emit("x", nil)
						defer c.Close()
					}
				}
			})
		}
		time.Sleep(time.Duration(round) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: Shutdown: %v", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Shutdown hung", round)
		}
		cancel()
		close(stop)
		dialers.Wait()
	}
}

// TestEventsBeforeCloseArrive: a client that sends events and closes
// while frames for it wait unread in its socket must still have every
// event delivered. The server's write to it then fails (the client has
// gone) while the events it sent wait unread on the server's end; the
// reader must drain them before the connection closes.
func TestEventsBeforeCloseArrive(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	rec := routertest.Record(t, ts.Dial(t, "A"), "last-words")
	flood := ts.Dial(t, "A")
	const rounds, k = 20, 50
	for round := range rounds {
		rc := dialRaw(t, ts, "A")
		rc.hello()
		// Fill the raw client's socket: it never reads, so the server's
		// writer ends up blocked on it.
		for range 200 {
			if err := flood.Emit("flood", make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
		}
		var words []byte
		for range k {
			words = append(words, rc.event("last-words")...)
		}
		rc.write(words)
		rc.nc.Close()
		rec.WaitCount(t, "last-words", (round+1)*k)
	}
}

// TestCloseCutsGracefulShutdownShort: a graceful stop (begun by the
// control request shutdown) waits for a client that reads nothing; a
// Close, or a Shutdown whose own ctx ends, during it drops what is
// queued and returns at once, not when the graceful stop's 30 s end.
// (Before, the later call waited for the first, whose deadline was the
// only one that counted.)
func TestCloseCutsGracefulShutdownShort(t *testing.T) {
	for _, how := range []string{"Close", "Shutdown"} {
		t.Run(how, func(t *testing.T) {
			const grace = 30 * time.Second
			// A server of its own: routertest's would fail the test for
			// the queue this one drops.
			dir := routertest.ShortTempDir(t)
			ts := &routertest.Server{Dir: dir, Template: dir + "/{channel}.sock"}
			srv, err := router.Start(ts.ParseConfig(t, `"maxpending": 33554432, "channels": {"A": {}}`),
				router.Options{Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: grace})
			if err != nil {
				t.Fatal(err)
			}
			ts.Server = srv
			t.Cleanup(func() { srv.Close() })
			lazy := dialRaw(t, ts, "A")
			lazy.hello()
			pub := ts.Dial(t, "A", bus.Reconnect(false))
			blob := make([]byte, 32<<10)
			for range 256 { // 8 MiB, far more than the socket holds
				if err := pub.Emit("blob", blob); err != nil {
					t.Fatal(err)
				}
			}
			routertest.WaitFor(t, "frames queued for the client that reads nothing", func() bool {
				return ts.Channels()[0].Stats.Pending > 1<<20
			})
			ctl := ts.Dial(t, router.ControlChannel, bus.Reconnect(false))
			routertest.Control(t, ctl, "shutdown", nil)
			routertest.WaitFor(t, "the graceful stop to begin", func() bool {
				_, err := os.Stat(ts.Path("A"))
				return errors.Is(err, fs.ErrNotExist)
			})
			start := time.Now()
			if how == "Close" {
				ts.Close()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer cancel()
				if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Shutdown: %v, want its ctx's error", err)
				}
			}
			if took := time.Since(start); took > grace/3 {
				t.Errorf("%s during a graceful stop returned after %v: it waited for the graceful stop", how, took)
			}
			select {
			case <-ts.Done():
			default:
				t.Errorf("%s returned before the server stopped", how)
			}
		})
	}
}

// TestShutdownAgainAfterStop: once the server has stopped, Shutdown gives
// the stop's result, whatever its own ctx: nil after a clean stop, even
// with a ctx that has ended. (A first version of the cut-short Shutdown
// chose at random between the stop's result and ctx's error.)
func TestShutdownAgainAfterStop(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		if err := ts.Shutdown(ended); err != nil {
			t.Fatalf("Shutdown after a clean stop, with a ctx that ended: %v", err)
		}
	}
}
