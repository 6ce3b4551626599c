package router_test

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// BenchmarkNetFlow emits b.N events as fast as a publisher can on one
// server, unpaced, to a subscriber on each of two other servers, across
// the multicast link in the test's network namespace on lo: flow control
// alone keeps the sender within what both receivers take. It reports the
// rate at the slower subscriber, the events lost (never delivered to
// one of them), the datagrams the receivers skipped, and how long the
// sender waited for their windows.
func BenchmarkNetFlow(b *testing.B) {
	for _, size := range []int{128, 8 << 10} {
		b.Run(fmt.Sprintf("%dB-2rcv", size), func(b *testing.B) { benchNetFlow(b, size) })
	}
}

func benchNetFlow(b *testing.B, size int) {
	mcasttest.Need(b)
	port := mcasttest.Port()
	s1 := routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {"propagatetonet": true}}`))
	rcv := []*routertest.Server{
		routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {}}`)),
		routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {}}`)),
	}
	routertest.WaitFor(b, "the servers to see each other", func() bool {
		return len(s1.Peers()) == 2 && s1.NetStats().Link.FlowReceivers == 2
	})
	var got [2]atomic.Int64
	var lastAt atomic.Int64
	for i, s := range rcv {
		s.Dial(b, "A").On("bench", func(bus.Message) {
			got[i].Add(1)
			lastAt.Store(time.Now().UnixNano())
		})
	}
	pub := s1.Dial(b, "A")
	data := bus.RawData(append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(size)), make([]byte, size)...)) // msgpack bin32
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := pub.Emit("bench", data); err != nil {
			b.Fatal(err)
		}
	}
	for i := range got {
		for last, idle := got[i].Load(), time.Now(); got[i].Load() < int64(b.N); {
			time.Sleep(time.Millisecond)
			if n := got[i].Load(); n != last {
				last, idle = n, time.Now()
			} else if time.Since(idle) > 2*time.Second {
				break
			}
		}
	}
	b.StopTimer()
	elapsed := time.Unix(0, lastAt.Load()).Sub(start)
	n := min(got[0].Load(), got[1].Load())
	var skipped, slow uint64
	for _, s := range rcv {
		skipped += s.NetStats().Link.Lost
		for _, ci := range s.Channels() {
			slow += ci.Stats.SlowConsumers
		}
	}
	sent := s1.NetStats()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(2*int64(b.N)-got[0].Load()-got[1].Load()), "lost")
	b.ReportMetric(float64(skipped), "skipped")
	b.ReportMetric(float64(sent.Link.FlowHeldMs), "held-ms")
	if n < int64(b.N) {
		b.Logf("N %d: got %d and %d; skipped %d datagrams, %d slow clients dropped; the sender dropped %d events",
			b.N, got[0].Load(), got[1].Load(), skipped, slow, sent.SendFailed)
	}
}
