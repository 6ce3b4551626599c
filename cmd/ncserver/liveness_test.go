//go:build unix

package main

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestClientNoticesStoppedServer stops a real ncserver with SIGSTOP: its
// sockets stay open, but nothing answers. A client with a short ping
// timeout takes the connection for dead and says so with
// ErrPingTimeout; once the server runs again (SIGCONT), the client
// connects again on its own.
func TestClientNoticesStoppedServer(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	p := start(t, rt)
	waitForLog(t, p, "channel=A socket=")
	disconnected, reconnected := make(chan error, 4), make(chan struct{}, 4)
	tmpl := bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock"))
	c, err := bus.Dial(context.Background(), "A", tmpl,
		bus.Ping(50*time.Millisecond, time.Second), bus.ReconnectBackoff(20*time.Millisecond, 100*time.Millisecond),
		bus.OnDisconnect(func(err error) { disconnected <- err }),
		bus.OnReconnect(func() { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	firstID := c.ID()

	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	select {
	case err := <-disconnected:
		if !errors.Is(err, bus.ErrPingTimeout) {
			t.Errorf("disconnected by %v, want ErrPingTimeout", err)
		}
		// The timeout counts from the last frame the client heard, which
		// came before the stop: a ping interval (50 ms) before it, or a
		// few on a loaded machine. Before, the bound was the whole
		// second, and a run gave up 995 ms after the stop.
		if d := time.Since(stopped); d < time.Second-250*time.Millisecond {
			t.Errorf("gave up after %v, before the ping timeout", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not notice that the server stopped")
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	select {
	case <-reconnected:
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not reconnect to the resumed server")
	}
	// The client works on its new connection, and keeps it: what it
	// emits reaches another client of A from its new id, with no
	// disconnection since the one the stop caused. (Emit returning nil
	// proves nothing: a disconnected client buffers.)
	sub, err := bus.Dial(context.Background(), "A", tmpl, bus.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	heard := make(chan bus.Message, 1)
	if _, err := sub.Once("back", func(m bus.Message) { heard <- m }); err != nil {
		t.Fatal(err)
	}
	if err := c.Emit("back", nil); err != nil {
		t.Error(err)
	}
	select {
	case m := <-heard:
		if id := c.ID(); m.Sender != id || id == firstID {
			t.Errorf("the event came from %v; the client's id is %v, was %v before the stop; want the new one", m.Sender, id, firstID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reconnected client's event never reached the server")
	}
	if len(disconnected) != 0 || len(reconnected) != 0 {
		t.Errorf("after it reconnected, the client disconnected %d more times and reconnected %d more", len(disconnected), len(reconnected))
	}
}
