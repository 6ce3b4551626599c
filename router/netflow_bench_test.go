package router_test

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// BenchmarkNetFlow emits b.N events as fast as a publisher can on one
// server, unpaced, to a subscriber on each of two other servers, across
// the multicast link, in the test's network namespace on lo or (loss5)
// on three test hosts, one of which drops 5 % of the datagrams it
// receives (nftables): flow control alone keeps the sender within what
// both receivers take. It reports the
// rate at the slower subscriber, the events lost (never delivered to
// one of them), the datagrams the receivers skipped, and how long the
// sender waited for their windows.
func BenchmarkNetFlow(b *testing.B) {
	for _, size := range []int{128, 8 << 10} {
		b.Run(fmt.Sprintf("%dB-2rcv", size), func(b *testing.B) { benchNetFlow(b, size, onLo) })
	}
	b.Run("8192B-2rcv-loss5", func(b *testing.B) { benchNetFlow(b, 8<<10, lossyHost) })
	b.Run("8192B-2rcv-maxrate10M", func(b *testing.B) { benchNetFlow(b, 8<<10, onLoWith(`"maxrate": 10000000, `)) })
}

// flowSetup starts the sending server and the two receiving ones.
type flowSetup func(b *testing.B) (pub *routertest.Server, rcv []*routertest.Server)

// onLo runs the three servers in the benchmark's namespace, on lo.
var onLo = onLoWith("")

// onLoWith is onLo with more configuration members for the sender.
func onLoWith(extra string) flowSetup {
	return func(b *testing.B) (*routertest.Server, []*routertest.Server) {
		port := mcasttest.Port()
		s1 := routertest.NewServer(b, netMembers(port, "bench", extra+`"channels": {"A": {"propagatetonet": true}}`))
		return s1, []*routertest.Server{
			routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {}}`)),
			routertest.NewServer(b, netMembers(port, "bench", `"channels": {"A": {}}`)),
		}
	}
}

// lossyHost runs each server on a test host of its own, the first
// receiver's host dropping 5 % of the group's datagrams it receives
// (nftables), as newLossyNet does.
func lossyHost(b *testing.B) (*routertest.Server, []*routertest.Server) {
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("skipping: nftables' nft is not installed")
	}
	hosts := mcasttest.Hosts(b, 3)
	port := mcasttest.Port()
	members := func(channels string) string {
		return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": "bench",
"heartbeat": "50ms", "peertimeout": "2s", "channels": %s`, mcasttest.HostInterface, port, channels)
	}
	var s [3]*routertest.Server
	hosts[0].Do(func() { s[0] = routertest.NewServer(b, members(`{"A": {"propagatetonet": true}}`)) })
	for i := 1; i < 3; i++ {
		hosts[i].Do(func() { s[i] = routertest.NewServer(b, members(`{"A": {}}`)) })
	}
	if s[0] == nil || s[1] == nil || s[2] == nil {
		b.FailNow()
	}
	for _, r := range [][]string{
		{"add", "table", "inet", "lossy"},
		{"add", "chain", "inet", "lossy", "in", "{ type filter hook input priority 0 ; }"},
		{"add", "rule", "inet", "lossy", "in", "udp", "dport", fmt.Sprint(port), "numgen", "random", "mod", "100", "<", "5", "counter", "drop"},
	} {
		if err := hosts[1].Run("nft", r...); err != nil {
			b.Skipf("skipping: nft cannot filter in the test host: %v", err)
		}
	}
	return s[0], s[1:]
}

func benchNetFlow(b *testing.B, size int, setup flowSetup) {
	mcasttest.Need(b)
	s1, rcv := setup(b)
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
	b.ReportMetric(float64(sent.Link.BytesSent)/elapsed.Seconds()/1e6, "MB/s-sent")
	if n < int64(b.N) {
		b.Logf("N %d: got %d and %d; skipped %d datagrams, %d slow clients dropped; the sender dropped %d events",
			b.N, got[0].Load(), got[1].Load(), skipped, slow, sent.SendFailed)
	}
}
