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
	c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock")),
		bus.Ping(50*time.Millisecond, time.Second), bus.ReconnectBackoff(20*time.Millisecond, 100*time.Millisecond),
		bus.OnDisconnect(func(err error) { disconnected <- err }),
		bus.OnReconnect(func() { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

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
		if d := time.Since(stopped); d < time.Second {
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
	if err := c.Emit("back", nil); err != nil {
		t.Error(err)
	}
}
