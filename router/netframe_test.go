package router_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNetFramesNotReused interleaves, from one publisher, events for a
// channel the receiving server serves (A) with events for one it does
// not (B), of sizes that grow and shrink, while the receiving server's
// subscriber reads slowly: every event of A arrives whole, as sent,
// however many events of B the server copied and dropped after it. The
// server copies each event from the network into a frame, and keeps the
// frame of one it drops for the next: a frame handed on must never be
// written again.
func TestNetFramesNotReused(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "frames", `"channels": {"A": {"propagatetonet": true}, "B": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "frames", `"channels": {"A": {}}`)
	waitPeers(t, s1, s2)
	fill := func(n, b int) []byte { return bytes.Repeat([]byte{byte(b)}, n) }
	sizes := []int{100, 3000, 40, 1200, 9000, 10, 500}
	const rounds = 60
	var (
		mu   sync.Mutex
		got  int
		bad  []string
		gate = make(chan struct{})
	)
	sub := s2.Dial(t, "A")
	sub.On("a", func(m bus.Message) {
		<-gate // read nothing until every event has been sent
		var data []byte
		if err := m.Decode(&data); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		want := fill(sizes[got%len(sizes)], got)
		if !bytes.Equal(data, want) && len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("event %d: %d bytes starting %v, want %d of %d", got, len(data), data[:min(4, len(data))], len(want), byte(got)))
		}
		got++
	})
	pa, pb := s1.Dial(t, "A"), s1.Dial(t, "B")
	for i := range rounds {
		if err := pa.Emit("a", fill(sizes[i%len(sizes)], i)); err != nil {
			t.Fatal(err)
		}
		if err := pb.Emit("b", fill(sizes[(i+3)%len(sizes)], 0xee)); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the receiving server to drop every event of B", func() bool { return s2.NetStats().NoChannel == rounds })
	close(gate)
	routertest.WaitFor(t, "every event of A", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got == rounds
	})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("events of A changed after they were handed on: %v", bad)
	}
}
