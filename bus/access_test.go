package bus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// otherUID is a uid that runs none of this test's processes.
const otherUID = 4242

// TestServerUID checks the ServerUID option against a real server: the
// server's own uid lets Dial through; another makes it fail with a
// *ServerUIDError before the server hears a hello.
func TestServerUID(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	ts.Dial(t, "A", bus.ServerUID(os.Getuid()))
	_, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(ts.Template), bus.ServerUID(otherUID))
	var ue *bus.ServerUIDError
	if !errors.Is(err, bus.ErrWrongServer) || !errors.As(err, &ue) || ue.Got != os.Getuid() || ue.Want != otherUID {
		t.Fatalf("Dial with ServerUID(%d): %v, want a *ServerUIDError naming uid %d", otherUID, err, os.Getuid())
	}
	routertest.WaitFor(t, "the refused connection to leave", func() bool { return ts.Channels()[0].Stats.Clients == 1 })
	if n := ts.Channels()[0].Stats.EventsIn; n != 0 {
		t.Errorf("events in: %d", n)
	}
}

// TestForbiddenEndsClient: a client that a reload takes off the allow
// list is dropped with CodeForbidden and ends for good: one disconnect,
// no reconnect attempts looping, Done closed, Err the refusal.
func TestForbiddenEndsClient(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	var cb callbacks
	c := ts.Dial(t, "A", append(cb.options(), bus.ReconnectBackoff(10*time.Millisecond, 20*time.Millisecond))...)
	cfg := ts.ParseConfig(t, fmt.Sprintf(`"channels": {"A": {"allow": [%d]}}`, otherUID))
	if _, err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the client did not end: %d disconnects, %d reconnects", cb.disconnects.Load(), cb.reconnects.Load())
	}
	var se *bus.ServerError
	if !errors.As(c.Err(), &se) || se.Code != bus.CodeForbidden {
		t.Errorf("Err() = %v, want CodeForbidden", c.Err())
	}
	if d, r := cb.disconnects.Load(), cb.reconnects.Load(); d != 1 || r != 0 {
		t.Errorf("%d disconnects and %d reconnects, want 1 and 0", d, r)
	}
	if n := ts.Channels()[0].Stats.RefusedAllow; n != 1 {
		t.Errorf("refused_allow = %d, want 1: the client must not have tried again", n)
	}
}

// TestTooManyClientsRetries: a client that a server restart finds over
// maxclients keeps trying, and gets in once a place is free.
func TestTooManyClientsRetries(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerIn(t, dir, `"channels": {"A": {}}`)
	var cb callbacks
	fast := bus.ReconnectBackoff(10*time.Millisecond, 50*time.Millisecond)
	c := ts.Dial(t, "A", append(cb.options(), fast)...)
	var holder *bus.Client
	// The holder must take the one place before the reconnecting
	// client does; when the client wins the race, the server restarts
	// and the holder tries again.
	for attempt := 1; holder == nil; attempt++ {
		shutdown(t, ts)
		ts = routertest.NewServerIn(t, dir, `"channels": {"A": {"maxclients": 1}}`)
		var err error
		holder, err = bus.Dial(context.Background(), "A", bus.SocketTemplate(ts.Template), bus.Reconnect(false))
		var se *bus.ServerError
		if err != nil && (attempt == 10 || !errors.As(err, &se) || se.Code != bus.CodeTooManyClients) {
			t.Fatalf("dial the holder, attempt %d: %v", attempt, err)
		}
	}
	t.Cleanup(func() { holder.Close() })
	routertest.WaitFor(t, "a refusal of the reconnecting client", func() bool { return ts.Channels()[0].Stats.RefusedLimit >= 1 })
	if c.Connected() || c.Err() != nil {
		t.Fatalf("the client over maxclients: connected %v, ended %v", c.Connected(), c.Err())
	}
	before := cb.reconnects.Load()
	holder.Close()
	// OnReconnect runs on the client's notifier goroutine, after
	// Connected turns true: wait for both.
	routertest.WaitFor(t, "the client to get in", func() bool { return c.Connected() && cb.reconnects.Load() > before })
	if r := cb.reconnects.Load() - before; r != 1 {
		t.Errorf("%d reconnects after the holder left, want 1", r)
	}
}
