package router_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNetReloadKeepsEvents streams events from one server to another
// over multicast, inside the namespace, while reloads swap the first
// server's link again and again: an event handed to a link that the
// reload is closing goes to the one that took over, so every event
// arrives, once, in order, and none is counted lost.
func TestNetReloadKeepsEvents(t *testing.T) {
	port := mcasttest.Port()
	chans := `"channels": {"A": {"propagatetonet": true}}`
	s1 := netServer(t, port, "t", chans)
	s2 := netServer(t, port, "t", chans)
	waitPeers(t, s1, s2)
	pub := s1.Dial(t, "A")
	far := routertest.Record(t, s2.Dial(t, "A"), "seq")
	probe(t, pub, routertest.Record(t, s2.Dial(t, "A"), "probe"))

	const swaps = 6
	var sent atomic.Int64
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := pub.Emit("seq", i); err != nil {
				done <- err
				return
			}
			sent.Store(int64(i + 1))
		}
	}()
	flow := func() {
		for at := sent.Load(); sent.Load() < at+500; {
			time.Sleep(time.Millisecond)
		}
	}
	for i := range swaps {
		flow()
		// gaptimeout is one of the keys that reopen the link.
		members := fmt.Sprintf(`"gaptimeout": "%ds", %s`, 2+i%2, chans)
		if _, err := s1.Reload(s1.ParseConfig(t, netMembers(port, "t", members))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	flow()
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n := int(sent.Load())
	far.WaitCount(t, "seq", n)
	checkSeq(t, fmt.Sprintf("%d events across %d swaps", n, swaps), dataOf(t, far, "seq"), n)
	if c := logCount(s1, "configuration reloaded"); c != swaps {
		t.Errorf("%d reloads, want %d", c, swaps)
	}
	if st := s1.NetStats(); st.SendFailed != 0 {
		t.Errorf("send_failed %d", st.SendFailed)
	}
}
