package router_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// BenchmarkNetBridge measures events per second from a publisher on one
// server to a subscriber on another, across the multicast link, both
// servers in the test's network namespace on lo. It reports the events
// lost: UDP does not wait for a slow reader, and loss repair is not built
// yet. The publisher keeps at most about 512 KiB of events ahead of what
// the subscriber has received or the link has counted as lost.
func BenchmarkNetBridge(b *testing.B) {
	for _, size := range []int{128, 8 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchNet(b, size) })
	}
}

func benchNet(b *testing.B, size int) {
	mcasttest.Need(b)
	port := mcasttest.Port()
	s1 := routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {"propagatetonet": true}}`))
	s2 := routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {}}`))
	routertest.WaitFor(b, "the servers to see each other", func() bool { return len(s1.Peers()) == 1 && len(s2.Peers()) == 1 })
	var got atomic.Int64
	sub := s2.Dial(b, "A")
	sub.On("bench", func(bus.Message) { got.Add(1) })
	pub := s1.Dial(b, "A")
	data := bus.RawData(append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(size)), make([]byte, size)...)) // msgpack bin32
	window := int64(max(16, (512<<10)/(size+300)))
	var lostSoFar int64
	frags := uint64(multicast.Fragments(size+100, multicast.DefaultPayload))
	lost := func() int64 { return int64(s2.NetStats().Link.Lost / frags) }
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i%16 == 0 {
			// Losses are known only from the gaps they leave, so the
			// count is read now and then while waiting.
			for spins := 0; int64(i)-got.Load()-lostSoFar > window; spins++ {
				if spins%256 == 255 {
					lostSoFar = lost()
				}
				runtime.Gosched()
			}
		}
		if err := pub.Emit("bench", data); err != nil {
			b.Fatal(err)
		}
	}
	// Wait for the rest, until nothing more arrives for half a second.
	for last, idle := got.Load(), time.Now(); got.Load() < int64(b.N); {
		time.Sleep(time.Millisecond)
		if n := got.Load(); n != last {
			last, idle = n, time.Now()
		} else if time.Since(idle) > 500*time.Millisecond {
			break
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := got.Load()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(int64(b.N)-n), "lost")
	b.ReportMetric(100*float64(int64(b.N)-n)/float64(b.N), "lost%")
}
