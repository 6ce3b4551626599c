package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSShutdownSendsLastEvents: a server that stops asks its clients
// to stop sending and reads what they wrote before they heard it; those
// last events reach its own clients and, through NATS, the other
// servers too: no event is delivered at home and lost on the way out.
func TestNATSShutdownSendsLastEvents(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack string) {
		ns := startNATS(t, 0)
		s1, s2 := natsNode(t, ns.ClientURL(), pack), natsNode(t, ns.ClientURL(), pack)
		waitNATS(t, s1, s2)
		checkLastEventsOut(t, s1, s2)
	})
}

// checkLastEventsOut streams on channel A from a client of stopping,
// shuts stopping down mid-stream, and checks that every event a client
// of stopping heard reached a client of other too.
func checkLastEventsOut(t *testing.T, stopping, other *routertest.Server) {
	t.Helper()
	local := routertest.Record(t, stopping.Dial(t, "A"), "seq")
	far := routertest.Record(t, other.Dial(t, "A"), ".*")
	pub := stopping.Dial(t, "A", bus.Name("pub"))
	probe(t, pub, far)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if pub.Emit("seq", i) != nil {
				return
			}
		}
	}()
	local.WaitCount(t, "seq", 5000) // the stream is well under way
	if err := stopping.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	heard := stable(t, local, "seq")
	routertest.WaitFor(t, "every event heard at home to reach the other server", func() bool {
		return far.Count("seq") >= heard
	})
	got := map[int]bool{}
	for _, v := range dataOf(t, far, "seq") {
		got[v] = true
	}
	missing := 0
	for _, v := range dataOf(t, local, "seq") {
		if !got[v] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d events the stopping server delivered at home never reached the other server", missing, heard)
	}
	t.Logf("%d events heard at home, %d on the other server", heard, far.Count("seq"))
}

// stable waits until r's count of event has not moved for 300 ms, and
// returns it.
func stable(t *testing.T, r *routertest.Recorder, event string) int {
	t.Helper()
	last, since := r.Count(event), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Since(since) < 300*time.Millisecond; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the count of %s never settled", event)
		}
		if n := r.Count(event); n != last {
			last, since = n, time.Now()
		}
	}
	return last
}

// TestNetShutdownSendsLastEvents is TestNATSShutdownSendsLastEvents over
// UDP multicast, inside the tests' private network namespace.
func TestNetShutdownSendsLastEvents(t *testing.T) {
	mcasttest.Need(t)
	members := netMembers(mcasttest.Port(), "last", `"channels": {"A": {"propagatetonet": true}}`)
	s1, s2 := routertest.NewServer(t, members), routertest.NewServer(t, members)
	waitPeers(t, s1, s2)
	checkLastEventsOut(t, s1, s2)
}
