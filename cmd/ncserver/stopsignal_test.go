package main

import (
	"bufio"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// The tests here drive serve with a channel standing for the process's
// signals (TestEarlySignal sends real ones to a child process).

// queuedFor starts a server whose graceful stop may take grace, with a
// raw client of channel A that reads nothing and 8 MiB of events (256
// of 32 KiB) queued for it. It returns the server and the client's
// frame reader.
func queuedFor(t *testing.T, grace time.Duration) (*routertest.Server, *wire.FrameReader) {
	t.Helper()
	// A server of its own: routertest's would fail the test for a queue
	// that a test drops.
	dir := routertest.ShortTempDir(t)
	ts := &routertest.Server{Dir: dir, Template: dir + "/{channel}.sock"}
	srv, err := router.Start(ts.ParseConfig(t, `"maxpending": 33554432, "channels": {"A": {}}`),
		router.Options{Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: grace})
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	t.Cleanup(func() { srv.Close() })
	lazy, err := net.Dial("unix", ts.Path("A"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lazy.Close() })
	if _, err := lazy.Write(wire.AppendHello(nil, &wire.Hello{Version: 1, ClientID: uuid.New(), Name: "lazy"})); err != nil {
		t.Fatal(err)
	}
	fr := wire.NewFrameReader(bufio.NewReader(lazy), 0)
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	pub := ts.Dial(t, "A", bus.Reconnect(false))
	blob := make([]byte, 32<<10)
	for range 256 {
		if err := pub.Emit("blob", blob); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the events queued for the client that reads nothing", func() bool {
		for _, ch := range ts.Channels() {
			if ch.Name == "A" {
				return ch.Stats.EventsIn == 256
			}
		}
		return false
	})
	return ts, fr
}

// TestSIGHUPDuringStop: a SIGHUP that comes while a SIGTERM's graceful
// stop waits for a slow client does not cut the stop short: the client,
// reading at last, gets every event queued for it, then the notice of
// the shutdown. (Before, any second signal, SIGHUP too, stopped the
// server at once and dropped the queue.)
func TestSIGHUPDuringStop(t *testing.T) {
	ts, fr := queuedFor(t, time.Minute)
	var logs routertest.LogBuffer
	sigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	sigs <- syscall.SIGTERM
	go func() {
		defer close(done)
		serve(ts.Server, slog.New(slog.NewTextHandler(&logs, nil)), time.Minute, sigs, controls{}, nil)
	}()
	routertest.WaitFor(t, "the graceful stop to begin", func() bool { return strings.Contains(logs.String(), "signal=terminated") })
	sigs <- syscall.SIGHUP
	routertest.WaitFor(t, "serve to take the SIGHUP", func() bool { return len(sigs) == 0 })
	time.Sleep(100 * time.Millisecond) // the SIGHUP would have cut the stop short by now
	got := 0
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		body := frame[wire.HeaderLen:]
		if typ, _ := wire.TypeOf(body); typ == wire.FrameError {
			break
		}
		got++
	}
	if got != 256 {
		t.Errorf("the client got %d of the 256 events queued for it", got)
	}
	<-done
	if !strings.Contains(logs.String(), "SIGHUP: configuration not reloaded; the server is stopping") ||
		strings.Contains(logs.String(), "second signal") {
		t.Errorf("the log does not say the SIGHUP was ignored:\n%s", logs.String())
	}
}

// TestSecondSignalCutsControlShutdown: two SIGINTs during a graceful stop
// that the control request shutdown began cut it short, as they do one
// that a signal began. (Before, the second signal cancelled a Shutdown
// that only waited for the control request's, 30 s here.)
func TestSecondSignalCutsControlShutdown(t *testing.T) {
	const grace = 30 * time.Second
	ts, _ := queuedFor(t, grace)
	var logs routertest.LogBuffer
	sigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(ts.Server, slog.New(slog.NewTextHandler(&logs, nil)), grace, sigs, controls{}, nil)
	}()
	ctl := ts.Dial(t, router.ControlChannel, bus.Reconnect(false))
	routertest.Control(t, ctl, "shutdown", nil)
	routertest.WaitFor(t, "the graceful stop to begin", func() bool {
		_, err := os.Stat(ts.Path("A"))
		return os.IsNotExist(err)
	})
	start := time.Now()
	sigs <- syscall.SIGINT
	routertest.WaitFor(t, "the first SIGINT to be taken", func() bool { return strings.Contains(logs.String(), "signal=interrupt") })
	sigs <- syscall.SIGINT
	select {
	case <-done:
	case <-time.After(grace / 3):
		t.Fatalf("serve still waits %v after two SIGINTs:\n%s", time.Since(start), logs.String())
	}
	select {
	case <-ts.Done():
	default:
		t.Error("serve returned before the server stopped")
	}
}
