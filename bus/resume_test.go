package bus_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

// TestResumeAcrossRestarts stops the server gracefully, as SIGTERM and
// the control request restart do, and starts a new one on the same
// sockets, twice, under a publisher that emits numbered events without
// pause and two subscribers: one that reconnects before the publisher
// and one that reconnects after it. Every event Emit accepted reaches
// both subscribers exactly once and in order: the stopping server reads
// all the publisher wrote and delivers it before it closes, the
// publisher keeps what it emits meanwhile for the new server, and the
// new server's ring gives each subscriber what it missed while away.
func TestResumeAcrossRestarts(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	// The publisher runs at full speed, and the slow subscriber is away
	// for up to half a second: a ring of 64 MiB holds what it misses.
	const config = `"retainbytes": 67108864, "channels": {"A": {}}`
	ts := routertest.NewServerIn(t, dir, config)
	var fastCB, slowCB, pubCB callbacks
	fast := ts.Dial(t, "A", append(fastCB.options(), bus.ReconnectBackoff(5*time.Millisecond, 10*time.Millisecond))...)
	slow := ts.Dial(t, "A", append(slowCB.options(), bus.ReconnectBackoff(400*time.Millisecond, 400*time.Millisecond))...)
	fastRec, slowRec := recordSeq(t, fast), recordSeq(t, slow)
	pub := ts.Dial(t, "A", append(pubCB.options(), bus.ReconnectBackoff(100*time.Millisecond, 100*time.Millisecond))...)

	stop := make(chan struct{})
	var emitted atomic.Int64
	var wg sync.WaitGroup
	emitSeq(t, pub, stop, &emitted, &wg)

	const restarts = 2
	for round := 1; round <= restarts; round++ {
		before := slowRec.count()
		routertest.WaitFor(t, "events before the restart", func() bool { return slowRec.count() >= before+500 })
		shutdown(t, ts)
		ts = routertest.NewServerIn(t, dir, config)
		routertest.WaitFor(t, "the clients to reconnect", func() bool {
			return fastCB.reconnects.Load() == int32(round) && slowCB.reconnects.Load() == int32(round) &&
				pubCB.reconnects.Load() == int32(round) && fast.Connected() && slow.Connected() && pub.Connected()
		})
		after := slowRec.count()
		routertest.WaitFor(t, "events after the restart", func() bool { return slowRec.count() >= after+500 })
	}
	close(stop)
	wg.Wait()
	n := int(emitted.Load())
	for name, rec := range map[string]*seqRecorder{"fast": fastRec, "slow": slowRec} {
		if m := fast.Missed() + slow.Missed(); m > 0 {
			t.Fatalf("the subscribers missed %d events: the ring was too small for the test", m)
		}
		routertest.WaitFor(t, name+" to hear every event", func() bool { return rec.count() >= n })
		got := rec.values()
		for i, v := range got {
			if v != i {
				t.Fatalf("%s: event %d is %d: lost, doubled or out of order", name, i, v)
			}
		}
		if len(got) != n {
			t.Errorf("%s: heard %d events, want %d", name, len(got), n)
		}
	}
	t.Logf("%d events emitted across %d restarts: none lost, none doubled", n, restarts)
	for name, c := range map[string]*bus.Client{"fast": fast, "slow": slow, "pub": pub} {
		if c.Missed() != 0 {
			t.Errorf("%s: missed %d", name, c.Missed())
		}
	}
	fast.Close()
	slow.Close()
	pub.Close()
	shutdown(t, ts)
	goleak.VerifyNone(t)
}
