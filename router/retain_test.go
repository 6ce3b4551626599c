package router_test

import (
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// retainedOn returns channel name's ring counters from the server.
func retainedOn(t *testing.T, ts *routertest.Server, name string) (events, bytes int) {
	t.Helper()
	for _, ci := range ts.Channels() {
		if ci.Name == name {
			return ci.Stats.Retained, ci.Stats.RetainedBytes
		}
	}
	t.Fatalf("no channel %s", name)
	return 0, 0
}

// TestRetainKeys: a channel retains what its clients emit, and what a
// rule propagates to it, within retainbytes, never on control; a reload
// that sets retainbytes to 0 empties the rings in place, keeping the
// clients; one that sets it again retains from then on.
func TestRetainKeys(t *testing.T) {
	ts := routertest.NewServer(t, `"retainbytes": 65536, "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	a := ts.Dial(t, "A", bus.Name("a"))
	b := ts.Dial(t, "B", bus.Name("b"))
	heard := routertest.Record(t, b, "x")
	for i := range 100 {
		if err := a.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	heard.WaitCount(t, "x", 100)
	for _, name := range []string{"A", "B"} {
		if n, size := retainedOn(t, ts, name); n == 0 || size > 65536 {
			t.Errorf("channel %s retains %d events in %d bytes, want some within 65536", name, n, size)
		}
	}
	if n, _ := retainedOn(t, ts, "control"); n != 0 {
		t.Errorf("control retains %d events", n)
	}

	if _, err := ts.Reload(ts.ParseConfig(t, `"retainbytes": 0, "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"A", "B"} {
		if n, size := retainedOn(t, ts, name); n != 0 || size != 0 {
			t.Errorf("after retainbytes 0, channel %s retains %d events in %d bytes", name, n, size)
		}
	}
	if _, err := ts.Reload(ts.ParseConfig(t, `"retainage": "1m", "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Emit("x", 100); err != nil {
		t.Fatal(err)
	}
	heard.WaitCount(t, "x", 101)
	routertest.WaitFor(t, "the event retained on both channels", func() bool {
		na, _ := retainedOn(t, ts, "A")
		nb, _ := retainedOn(t, ts, "B")
		return na == 1 && nb == 1
	})
	if !a.Connected() || !b.Connected() || a.Missed() != 0 {
		t.Errorf("the reloads disturbed the clients")
	}
}
