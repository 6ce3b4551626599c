package router_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// fakeReceiver multicasts, every 20 ms until stopped, the status of a
// receiver that never gets past position in target's stream and can
// take only window more: a receiver that holds the sender back.
func fakeReceiver(t *testing.T, port int, cluster string, target uuid.UUID, position uint64, window uint32) (stop func()) {
	t.Helper()
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(239, 255, 77, 77), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	node := uuid.New()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer conn.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			h := multicast.Header{Kind: multicast.KindStatus, Records: 1, Cluster: multicast.ClusterIDOf(cluster), Node: node, Seq: seq}
			d := multicast.AppendStatus(multicast.AppendHeader(nil, &h), []multicast.StatusEntry{{Node: target, Position: position, Window: window}})
			conn.Write(d)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return sync.OnceFunc(func() { close(done); wg.Wait() })
}

// TestNetPublisherWaitsThenDrops: a receiver that takes nothing holds
// the sender to its window; the publisher's events then wait for the
// link, for at most peertimeout plus a heartbeat each, and those still
// refused are dropped, counted and logged once for the episode. Once
// the receiver falls silent, the sender leaves it out, the episode's
// end is logged, and the other server gets every event not dropped.
func TestNetPublisherWaitsThenDrops(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {}}`)
	waitPeers(t, s1, s2)
	rec := routertest.Record(t, s2.Dial(t, "A"), "n")
	stop := fakeReceiver(t, port, "t", s1.Node(), s2.Peers()[0].LastSeq, 16)
	t.Cleanup(stop)
	routertest.WaitFor(t, "the sender to count the stuck receiver", func() bool { return s1.NetStats().Link.FlowReceivers == 2 })
	pub := s1.Dial(t, "A")
	const n = 400
	big := strings.Repeat("x", 8000)
	for range n {
		if err := pub.Emit("n", big); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "an event to be dropped", func() bool { return s1.NetStats().SendFailed >= 2 })
	stop()
	routertest.WaitFor(t, "the episode to end", func() bool {
		return strings.Contains(s1.Logs.String(), "events reach the network again")
	})
	st := s1.NetStats()
	routertest.WaitFor(t, "the rest to arrive", func() bool { return rec.Count("n") == n-int(st.SendFailed) })
	logs := s1.Logs.String()
	if c := strings.Count(logs, "dropping events for the network"); c != 1 {
		t.Errorf("the drops were logged %d times, want once for the episode", c)
	}
	if st.SendFailed != st.Link.QueueFull || st.Link.FlowExcluded != 1 || st.Link.FlowHeld == 0 {
		t.Errorf("send_failed %d, queue_full %d, flow_excluded %d, flow_held %d", st.SendFailed, st.Link.QueueFull, st.Link.FlowExcluded, st.Link.FlowHeld)
	}
	if l := s2.NetStats().Link; l.Lost != 0 {
		t.Errorf("the other server lost %d datagrams", l.Lost)
	}
}
