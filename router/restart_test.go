package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestControlRestartUnsupported: a server without Options.Restart says it
// cannot restart, and goes on serving, its clients connected.
func TestControlRestartUnsupported(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	ctl := ts.Dial(t, router.ControlChannel)
	a, b := ts.DialWatched(t, "A"), ts.DialWatched(t, "A")
	rec := routertest.Record(t, b.Client, ".*")
	wantError(t, routertest.Control(t, ctl, "restart", nil), "this server cannot restart itself")
	if err := a.Emit("after", nil); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "after", 1)
	select {
	case <-ts.Done():
		t.Error("the server stopped")
	default:
	}
	ts.CheckKept(t, a)
	ts.CheckKept(t, b)
}

// TestControlRestartHook: restart answers the asker, then calls the hook
// once; here the hook shuts the server down, as ncserver's does, and the
// asker still has its answer. A bad request does not call it.
func TestControlRestartHook(t *testing.T) {
	calls := make(chan struct{}, 4)
	started := make(chan *router.Server, 1) // the hook's server, passed where the race detector sees it
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerWith(t, dir, dir+"/{channel}.sock", `"channels": {"A": {}}`, func(o *router.Options) {
		o.Restart = func() {
			calls <- struct{}{}
			srv := <-started
			go srv.Shutdown(context.Background())
		}
	})
	started <- ts.Server
	errs := make(chan error, 4)
	ctl := ts.Dial(t, router.ControlChannel, bus.ErrorHandler(func(err error) { errs <- err }))
	onA := ts.Dial(t, "A", bus.Reconnect(false))

	wantError(t, routertest.Control(t, ctl, "restart", map[string]any{"now": true}), `unknown argument "now"`)
	if ans := routertest.Control(t, ctl, "restart", nil); ans["ok"] != true {
		t.Errorf("answer: %v", ans)
	}
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the hook was not called")
	}
	select {
	case <-ts.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	<-onA.Done()
	if err := <-errs; !isCode(err, bus.CodeShutdown) {
		t.Errorf("the asker heard %v, want a shutdown error frame", err)
	}
	if n := len(calls); n != 0 {
		t.Errorf("the hook was called %d more times", n)
	}
}
