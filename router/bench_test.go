package router_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// BenchmarkThroughput measures events per second from one publisher to
// S subscribers on one channel, and to S subscribers on a channel the
// publisher's channel propagates to, through a real server over Unix
// sockets. Each event carries 128 bytes of data. The publisher keeps at
// most a window of events ahead of the slowest subscriber, as a real
// application with flow control would, so no one is dropped as slow.
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range []struct {
		subs int
		on   string
	}{{1, "A"}, {4, "A"}, {1, "B"}, {4, "B"}} {
		b.Run(fmt.Sprintf("1to%d-%s", tc.subs, map[string]string{"A": "same", "B": "propagated"}[tc.on]), func(b *testing.B) {
			benchThroughput(b, tc.subs, tc.on)
		})
	}
}

func benchThroughput(b *testing.B, subs int, on string) {
	const window = 8192
	ts := routertest.NewServer(b, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	counts := make([]atomic.Int64, subs)
	for i := range subs {
		c := ts.Dial(b, on)
		c.On("bench", func(bus.Message) { counts[i].Add(1) })
	}
	pub := ts.Dial(b, "A")
	data := bus.RawData(append([]byte{0xc4, 128}, make([]byte, 128)...)) // msgpack bin8 of 128 bytes
	slowest := func() int64 { return slowestCount(counts) }
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for int64(i)-slowest() > window {
			runtime.Gosched()
		}
		if err := pub.Emit("bench", data); err != nil {
			b.Fatal(err)
		}
	}
	for slowest() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N*subs)/elapsed.Seconds(), "deliveries/s")
	for _, ci := range ts.Channels() {
		if ci.Stats.SlowConsumers != 0 {
			b.Fatalf("channel %s dropped %d slow consumers", ci.Name, ci.Stats.SlowConsumers)
		}
	}
}

// slowestCount is the smallest of the subscribers' counts: how far the
// slowest one has got.
func slowestCount(counts []atomic.Int64) int64 {
	m := counts[0].Load()
	for i := range counts {
		m = min(m, counts[i].Load())
	}
	return m
}
