//go:build unix

package router_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
)

// A receiving server stopped as a whole: three ncserver processes on lo
// in the test's network namespace, a publisher on the first emitting
// unpaced onto the network, a subscriber on each of the other two, and
// the third server's process stopped (SIGSTOP) for a while and resumed
// (SIGCONT). Its sockets keep what arrives until they are full, its
// timers and its statuses stop: what a host that loses the CPU, or a
// debugger, does to the cluster.

// stopPlan is one run: events of size bytes, emitted unpaced for warm,
// then through the stop of the third server for stop, then for after.
type stopPlan struct {
	size              int
	warm, stop, after time.Duration
	heartbeat         string
	peerTimeout       string
}

// stopRecorder counts what one subscriber receives and checks its order:
// the publisher numbers its events from 1.
type stopRecorder struct {
	n        atomic.Int64
	backward atomic.Int64 // events that came after a later one, or twice
	jumps    atomic.Int64 // events that came after a gap
	last     int64        // the dispatcher's alone
	lastAt   atomic.Int64 // Unix nanoseconds of the last event
	// maxGap is the longest time between two events, in nanoseconds,
	// once armed (the third server stopped).
	maxGap atomic.Int64
	armed  atomic.Bool
}

func (r *stopRecorder) listen(c *bus.Client) {
	c.On("stop", func(m bus.Message) {
		seq := int64(binary.BigEndian.Uint64(m.Data[5:]))
		switch {
		case seq <= r.last:
			r.backward.Add(1)
		case seq > r.last+1:
			r.jumps.Add(1)
		}
		r.last = max(r.last, seq)
		now := time.Now().UnixNano()
		if prev := r.lastAt.Swap(now); r.armed.Load() && now-prev > r.maxGap.Load() {
			r.maxGap.Store(now - prev)
		}
		r.n.Add(1)
	})
}

// stopResult is what one run measured.
type stopResult struct {
	emitted int64
	got     [2]int64 // events received at the second and third server
	// rates at the second server: before the stop, during it, and in
	// the last second after it (events/s).
	before, during, after float64
	gap                   time.Duration // longest pause at the second server, from the stop
	backward, jumps       [2]int64
	skipped               [2]uint64 // datagrams the receivers skipped (stats lost)
	slow                  [2]uint64 // their clients dropped as slow
	heldMs, excluded      uint64    // the sender's flow_held_ms and flow_excluded over the run
	sendFailed            uint64    // events the sender dropped
	senderLog             string
}

// runStop runs plan and returns what it measured.
func runStop(t testing.TB, plan stopPlan) stopResult {
	t.Helper()
	mcasttest.Need(t)
	port := mcasttest.Port()
	members := func(channels string) string {
		return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": "stop",
"heartbeat": %q, "peertimeout": %q, "channels": %s`, mcasttest.Interface, port, plan.heartbeat, plan.peerTimeout, channels)
	}
	s1 := startNcserver(t, members(`{"A": {"propagatetonet": true}}`))
	rcv := []*ncproc{startNcserver(t, members(`{"A": {}}`)), startNcserver(t, members(`{"A": {}}`))}
	waitStats(t, s1, "the sender to take both receivers into flow control", func(st procStats) bool { return st.Network.FlowReceivers == 2 })
	var recs [2]stopRecorder
	for i, s := range rcv {
		recs[i].listen(s.dial(t, "A"))
	}
	pub := s1.dial(t, "A")
	start := s1.stats(t)

	var emitted atomic.Int64
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		payload := append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(plan.size)), make([]byte, plan.size)...) // msgpack bin32
		for seq := uint64(1); ; seq++ {
			select {
			case <-quit:
				return
			default:
			}
			binary.BigEndian.PutUint64(payload[5:], seq)
			if err := pub.Emit("stop", bus.RawData(payload)); err != nil {
				t.Errorf("emit: %v", err)
				return
			}
			emitted.Store(int64(seq))
		}
	})
	stopPublisher := sync.OnceFunc(func() {
		close(quit)
		wg.Wait()
	})
	t.Cleanup(stopPublisher)

	var res stopResult
	rate := func(d time.Duration) float64 {
		n0 := recs[0].n.Load()
		time.Sleep(d)
		return float64(recs[0].n.Load()-n0) / d.Seconds()
	}
	time.Sleep(plan.warm - time.Second)
	res.before = rate(time.Second)
	rcv[1].signal(t, syscall.SIGSTOP)
	recs[0].armed.Store(true)
	res.during = rate(plan.stop)
	rcv[1].signal(t, syscall.SIGCONT)
	time.Sleep(plan.after - time.Second)
	res.after = rate(time.Second)
	stopPublisher()
	res.emitted = emitted.Load()

	for i := range recs {
		awaitQuiet(&recs[i].n, res.emitted, 3*time.Second)
	}
	end := s1.stats(t)
	res.heldMs = end.Network.FlowHeldMs - start.Network.FlowHeldMs
	res.excluded = end.Network.FlowExcluded - start.Network.FlowExcluded
	res.sendFailed = end.Network.SendFailed
	res.gap = time.Duration(recs[0].maxGap.Load())
	for i, s := range rcv {
		st := s.stats(t)
		res.got[i] = recs[i].n.Load()
		res.backward[i], res.jumps[i] = recs[i].backward.Load(), recs[i].jumps.Load()
		res.skipped[i] = st.Network.Lost
		for _, ch := range st.Channels {
			res.slow[i] += ch.SlowConsumers
		}
	}
	res.senderLog = s1.log.String()
	return res
}

// waitStats polls the server's stats until cond holds, or fails the
// test after 30 s.
func waitStats(t testing.TB, p *ncproc, what string, cond func(procStats) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(p.stats(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, p.stats(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lost is how many of the events emitted one of the receivers never
// delivered.
func (r *stopResult) lost(i int) int64 { return r.emitted - r.got[i] }

func (r *stopResult) String() string {
	return fmt.Sprintf("emitted %d; received %d and %d (lost %d and %d; skipped datagrams %d and %d; out of order %d and %d; after a gap %d and %d; slow clients %d and %d); "+
		"at the running receiver %.0f events/s before, %.0f during the stop, %.0f after, longest pause %v; sender held %d ms, excluded %d, dropped %d",
		r.emitted, r.got[0], r.got[1], r.lost(0), r.lost(1), r.skipped[0], r.skipped[1], r.backward[0], r.backward[1],
		r.jumps[0], r.jumps[1], r.slow[0], r.slow[1], r.before, r.during, r.after, r.gap.Round(time.Millisecond), r.heldMs, r.excluded, r.sendFailed)
}

// TestNetStoppedReceiver stops a receiving ncserver process (SIGSTOP)
// under an unpaced publisher. Stopped for 1 s, less than peertimeout:
// the sender waits for it (flow control holds it back), and once it
// resumes both receivers deliver every event, once, in order. Stopped
// for longer than peertimeout: the sender stops waiting for it, counts
// and logs it as having left flow control, and the running receiver
// still delivers every event, once, in order; the stopped one delivers
// what it delivers in order.
func TestNetStoppedReceiver(t *testing.T) {
	t.Run("shorter than peertimeout", func(t *testing.T) {
		r := runStop(t, stopPlan{size: 1024, warm: 1500 * time.Millisecond, stop: time.Second, after: 2 * time.Second,
			heartbeat: "100ms", peerTimeout: "5s"})
		t.Log(&r)
		for i := range 2 {
			if r.lost(i) != 0 || r.backward[i] != 0 || r.jumps[i] != 0 {
				t.Errorf("receiver %d: %d of %d events lost, %d out of order, %d after a gap; want every one, in order",
					i+2, r.lost(i), r.emitted, r.backward[i], r.jumps[i])
			}
		}
		if r.heldMs == 0 {
			t.Errorf("the sender was never held back by the stopped receiver")
		}
		if r.excluded != 0 {
			t.Errorf("the stopped receiver left flow control %d times; it stopped for less than peertimeout", r.excluded)
		}
	})
	t.Run("longer than peertimeout", func(t *testing.T) {
		r := runStop(t, stopPlan{size: 1024, warm: 1500 * time.Millisecond, stop: 3 * time.Second, after: 2 * time.Second,
			heartbeat: "100ms", peerTimeout: "1s"})
		t.Log(&r)
		if r.lost(0) != 0 || r.backward[0] != 0 || r.jumps[0] != 0 {
			t.Errorf("running receiver: %d of %d events lost, %d out of order, %d after a gap; want every one, in order",
				r.lost(0), r.emitted, r.backward[0], r.jumps[0])
		}
		if r.backward[1] != 0 {
			t.Errorf("stopped receiver: %d events out of order or twice", r.backward[1])
		}
		if r.excluded == 0 || !strings.Contains(r.senderLog, "receiver left flow control") {
			t.Errorf("the sender did not report the stopped receiver: excluded %d; log:\n%s", r.excluded, r.senderLog)
		}
	})
}

// BenchmarkNetStop measures what a stopped receiving server (SIGSTOP of
// its process) does to the cluster, with events of 8 KiB and of 128
// bytes emitted unpaced: stopped for 1 s (peertimeout 5 s), then for 3 s
// (peertimeout 1 s). It reports the rates at the running receiver
// before, during and after the stop, its longest pause from the stop,
// the events lost and datagrams skipped at each receiver, and the
// sender's time held back and receivers excluded (stats, read over the
// control channel). Each run is one scenario of several seconds: run it
// with -benchtime=1x.
func BenchmarkNetStop(b *testing.B) {
	for _, size := range []int{8 << 10, 128} {
		b.Run(fmt.Sprintf("%dB-stop1s", size), func(b *testing.B) {
			benchStop(b, stopPlan{size: size, warm: 2 * time.Second, stop: time.Second, after: 3 * time.Second, heartbeat: "100ms", peerTimeout: "5s"})
		})
		b.Run(fmt.Sprintf("%dB-stop3s-peertimeout1s", size), func(b *testing.B) {
			benchStop(b, stopPlan{size: size, warm: 2 * time.Second, stop: 3 * time.Second, after: 3 * time.Second, heartbeat: "100ms", peerTimeout: "1s"})
		})
	}
}

func benchStop(b *testing.B, plan stopPlan) {
	var sum struct {
		before, during, after, gap, heldMs, excluded float64
		lost, skipped                                [2]float64
	}
	for range b.N {
		r := runStop(b, plan)
		b.Log(&r)
		sum.before += r.before
		sum.during += r.during
		sum.after += r.after
		sum.gap += float64(r.gap.Milliseconds())
		sum.heldMs += float64(r.heldMs)
		sum.excluded += float64(r.excluded)
		for i := range 2 {
			sum.lost[i] += float64(r.lost(i))
			sum.skipped[i] += float64(r.skipped[i])
		}
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(sum.before/n, "ev/s-before")
	b.ReportMetric(sum.during/n, "ev/s-stopped")
	b.ReportMetric(sum.after/n, "ev/s-after")
	b.ReportMetric(sum.gap/n, "pause-ms")
	b.ReportMetric(sum.heldMs/n, "held-ms")
	b.ReportMetric(sum.excluded/n, "excluded")
	b.ReportMetric(sum.lost[0]/n, "lost-rcv2")
	b.ReportMetric(sum.lost[1]/n, "lost-rcv3")
	b.ReportMetric(sum.skipped[0]/n, "skipped-rcv2")
	b.ReportMetric(sum.skipped[1]/n, "skipped-rcv3")
}
