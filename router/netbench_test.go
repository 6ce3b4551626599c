package router_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// BenchmarkNetBridge measures events per second from a publisher on one
// server to a subscriber on another, across the multicast link, both
// servers in the test's network namespace on lo. It reports the events
// lost. Paced, the publisher keeps at most about 512 KiB of events ahead
// of what the subscriber has received or the link has counted as lost,
// as an application would without the link's flow control; unpaced, it
// emits as fast as it can, and the link's flow control (flowcontrol
// "min") holds it to what the receiver takes.
// The -sealed runs give both servers a key, so that every datagram is
// sealed and opened (AES-256-GCM).
func BenchmarkNetBridge(b *testing.B) {
	for _, sealed := range []bool{false, true} {
		for _, paced := range []bool{true, false} {
			for _, size := range []int{128, 8 << 10} {
				name := fmt.Sprintf("%dB", size)
				if !paced {
					name += "-unpaced"
				}
				if sealed {
					name += "-sealed"
				}
				key := ""
				if sealed {
					key = `"key": "bench-key", `
				}
				b.Run(name, func(b *testing.B) { benchNet(b, size, paced, key) })
			}
		}
	}
	// Unpaced, with a history that holds everything sent: what loss
	// repair recovers when the history is not the limit.
	b.Run("8192B-unpaced-history256M", func(b *testing.B) { benchNet(b, 8<<10, false, `"history": 268435456, `) })
}

func benchNet(b *testing.B, size int, paced bool, extra string) {
	mcasttest.Need(b)
	port := mcasttest.Port()
	s1 := routertest.NewServer(b, netMembers(port, "bench", extra+`"channels": {"A": {"propagatetonet": true}}`))
	// The receiver takes the sender's key, if any; a history is the
	// sender's business.
	var key string
	if i := strings.Index(extra, `"key"`); i >= 0 {
		key = extra[i:]
	}
	s2 := routertest.NewServer(b, netMembers(port, "bench", key+`"channels": {"A": {}}`))
	routertest.WaitFor(b, "the servers to see each other", func() bool { return len(s1.Peers()) == 1 && len(s2.Peers()) == 1 })
	var got atomic.Int64
	sub := s2.Dial(b, "A")
	var lastAt atomic.Int64 // when the last event arrived, in Unix nanoseconds
	sub.On("bench", func(bus.Message) {
		got.Add(1)
		lastAt.Store(time.Now().UnixNano())
	})
	pub := s1.Dial(b, "A")
	data := bus.RawData(append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(size)), make([]byte, size)...)) // msgpack bin32
	window := int64(max(16, (512<<10)/(size+300)))
	if !paced {
		window = math.MaxInt64
	}
	var lostSoFar int64
	lost := func() int64 {
		// A lost datagram held a fragment of an event, or several events
		// packed together: the sender's ratio of events to datagrams
		// turns datagrams lost into events lost. Events the sender's
		// queue dropped are lost too.
		sent, got := s1.NetStats().Link, s2.NetStats().Link
		perDatagram := float64(sent.MessagesSent) / float64(max(1, sent.DatagramsSent))
		return int64(float64(got.Lost)*perDatagram) + int64(sent.QueueFull)
	}
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
				if spins < 64 {
					runtime.Gosched()
				} else {
					time.Sleep(20 * time.Microsecond)
				}
			}
		}
		if err := pub.Emit("bench", data); err != nil {
			b.Fatal(err)
		}
	}
	awaitQuiet(&got, int64(b.N), 500*time.Millisecond)
	b.StopTimer()
	elapsed := time.Unix(0, lastAt.Load()).Sub(start) // not the idle wait for lost events
	n := got.Load()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(int64(b.N)-n), "lost")
	b.ReportMetric(100*float64(int64(b.N)-n)/float64(b.N), "lost%")
	if n < int64(b.N) {
		sent, got := s1.NetStats().Link, s2.NetStats().Link
		var slow uint64
		for _, ci := range s2.Channels() {
			slow += ci.Stats.SlowConsumers
		}
		b.Logf("%d events lost: the receiver skipped %d datagrams (repaired %d, held at most %d bytes), dropped %d slow clients; the sender resent %d, answered %d as gone, %d answers cut by the rate",
			int64(b.N)-n, got.Lost, got.Repaired, got.HeldPeak, slow, sent.Resent, sent.Unavailable, sent.RepairLimited)
	}
}

// awaitQuiet waits for a count to reach want, or to stay still for
// quiet: what has not arrived by then is taken as lost.
func awaitQuiet(count *atomic.Int64, want int64, quiet time.Duration) {
	for last, idle := count.Load(), time.Now(); count.Load() < want; {
		time.Sleep(time.Millisecond)
		if n := count.Load(); n != last {
			last, idle = n, time.Now()
		} else if time.Since(idle) > quiet {
			return
		}
	}
}
