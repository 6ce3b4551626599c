package bus_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

// waitDone waits for c.Done, failing the test after a deadline.
func waitDone(t *testing.T, c *bus.Client, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Done was not closed %s", what)
	}
}

// notDone fails the test if c.Done is closed.
func notDone(t *testing.T, c *bus.Client, why string) {
	t.Helper()
	select {
	case <-c.Done():
		t.Errorf("Done is closed %s", why)
	default:
	}
}

// closeWithin runs close on a goroutine of its own and returns its
// error, failing the test if it does not return.
func closeWithin(t *testing.T, closeFn func() error, what string) error {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- closeFn() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// TestCloseFromListenerEndsAll closes a client from inside one of its
// listeners, and from a goroutine the listener waits for: Close returns,
// the listeners after it for the same event are not called, and every
// goroutine of the client ends, Done closing.
func TestCloseFromListenerEndsAll(t *testing.T) {
	for _, tc := range []struct {
		name string
		// closeFn calls c.Close as the listener does.
		closeFn func(c *bus.Client) error
	}{
		{"in the listener", func(c *bus.Client) error { return c.Close() }},
		{"on a goroutine the listener waits for", func(c *bus.Client) error {
			err := make(chan error)
			go func() { err <- c.Close() }()
			return <-err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := routertest.NewServer(t, oneChannel)
			pub := ts.Dial(t, "A")
			before := goleak.IgnoreCurrent() // the server's and pub's
			sub := ts.Dial(t, "A")
			closed := make(chan error, 1)
			var after atomic.Int32
			sub.On("bye", func(bus.Message) { closed <- tc.closeFn(sub) })
			sub.On("bye", func(bus.Message) { after.Add(1) })
			if err := pub.Emit("bye", nil); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close from a listener did not return")
			}
			waitDone(t, sub, "after Close from a listener")
			if n := after.Load(); n != 0 {
				t.Errorf("a listener was called %d times after Close returned", n)
			}
			if err := sub.Err(); err != bus.ErrClosed {
				t.Errorf("Err = %v, want ErrClosed", err)
			}
			goleak.VerifyNone(t, before)
		})
	}
}

// TestCloseFromCallback closes a client from its OnDisconnect callback,
// which the notifier goroutine runs: Close returns, the client does not
// reconnect, and Done closes.
func TestCloseFromCallback(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	closed := make(chan error, 1)
	var cp atomic.Pointer[bus.Client]
	var reconnects atomic.Int32
	c := ts.Dial(t, "A",
		bus.ReconnectBackoff(time.Millisecond, 5*time.Millisecond),
		bus.OnDisconnect(func(error) { closed <- cp.Load().Close() }),
		bus.OnReconnect(func() { reconnects.Add(1) }))
	cp.Store(c)
	shutdown(t, ts)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from OnDisconnect did not return")
	}
	waitDone(t, c, "after Close from OnDisconnect")
	if n := reconnects.Load(); n != 0 {
		t.Errorf("%d reconnects after Close", n)
	}
}

// TestCloseWaits closes a client whose listeners are idle: by the time
// Close returns, every goroutine of the client has ended.
func TestCloseWaits(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A")
	rec := routertest.Record(t, sub, "x")
	if err := pub.Emit("x", nil); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "x", 1)
	if err := closeWithin(t, sub.Close, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-sub.Done():
	default:
		t.Error("Close returned before every goroutine of the client ended")
	}
}

// TestCloseWhileListenerBlocked closes a client from outside while one
// of its listeners is blocked. Close cannot tell that it is not called
// from that listener, so it returns without waiting for it; the
// listeners after it are not called, and Done closes only once the
// blocked one has returned and every goroutine of the client has ended.
func TestCloseWhileListenerBlocked(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	before := goleak.IgnoreCurrent()
	sub := ts.Dial(t, "A")
	entered, release := make(chan struct{}), make(chan struct{})
	var after atomic.Int32
	sub.On("block", func(bus.Message) {
		close(entered)
		<-release
	})
	sub.On("block", func(bus.Message) { after.Add(1) })
	sub.On("later", func(bus.Message) { after.Add(1) })
	for _, event := range []string{"block", "later", "later"} {
		if err := pub.Emit(event, nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener was not called")
	}
	if err := closeWithin(t, sub.Close, "Close while a listener is blocked"); err != nil {
		t.Errorf("Close: %v", err)
	}
	notDone(t, sub, "while a listener is still running")
	close(release)
	waitDone(t, sub, "once the blocked listener returned")
	if n := after.Load(); n != 0 {
		t.Errorf("listeners were called %d times after Close returned", n)
	}
	goleak.VerifyNone(t, before)
}

// TestDoneWaitsForListeners ends a client without Close, by shutting
// the server down with Reconnect off, while a listener is blocked: the
// listeners still get the events that had arrived, and Done closes only
// after they have.
func TestDoneWaitsForListeners(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "A", bus.Reconnect(false))
	entered, release := make(chan struct{}), make(chan struct{})
	sub.On("block", func(bus.Message) {
		close(entered)
		<-release
	})
	rec := routertest.Record(t, sub, "later")
	for _, event := range []string{"block", "later", "later"} {
		if err := pub.Emit(event, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener was not called")
	}
	shutdown(t, ts)
	routertest.WaitFor(t, "the client to end", func() bool { return sub.Err() != nil })
	notDone(t, sub, "while a listener is still running")
	close(release)
	waitDone(t, sub, "once the listeners returned")
	if n := rec.Count("later"); n != 2 {
		t.Errorf("%d later events heard, want 2", n)
	}
}
