package multicast_test

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
)

// BenchmarkFlow sends b.N messages from one link to two others as fast
// as Send takes them (unpaced: flow control alone holds the sender
// back), in the test's network namespace on lo, and reports the rate
// at the receivers, the messages lost and the datagrams skipped, and
// how long the sender waited for its receivers' windows:
//
//   - 8KiB, 128B: the plain case;
//   - 8KiB-loss5: the second receiver's socket drops 5% of what it reads;
//   - 8KiB-stop1s: the first receiver stops for 1 s (it reads nothing
//     and sends nothing, as under SIGSTOP) a quarter of the way in,
//     below peertimeout (5 s): the sender waits for it;
//   - 8KiB-stop-past-peertimeout: it stops for 3 s with a peertimeout of
//     1 s: the sender leaves it out and goes on with the other;
//   - 8KiB-maxrate10M: the sender paced to 10 MB/s; it reports the rate
//     of the bytes it wrote.
func BenchmarkFlow(b *testing.B) {
	b.Run("8KiB", func(b *testing.B) { benchFlow(b, 8<<10, flowCase{}) })
	b.Run("128B", func(b *testing.B) { benchFlow(b, 128, flowCase{}) })
	b.Run("8KiB-loss5", func(b *testing.B) { benchFlow(b, 8<<10, flowCase{loss: 50}) })
	b.Run("8KiB-stop1s", func(b *testing.B) { benchFlow(b, 8<<10, flowCase{stop: time.Second}) })
	b.Run("8KiB-stop-past-peertimeout", func(b *testing.B) {
		benchFlow(b, 8<<10, flowCase{stop: 3 * time.Second, peerTimeout: time.Second})
	})
	b.Run("8KiB-maxrate10M", func(b *testing.B) { benchFlow(b, 8<<10, flowCase{maxRate: 10_000_000}) })
}

type flowCase struct {
	loss        uint64        // per mille dropped at the second receiver
	stop        time.Duration // how long the first receiver stops
	peerTimeout time.Duration
	maxRate     int
}

// counter counts what a link delivers.
type counter struct {
	n    atomic.Int64
	last atomic.Int64 // Unix nanoseconds of the last delivery
}

func (c *counter) deliver(uuid.UUID, []byte) {
	c.n.Add(1)
	c.last.Store(time.Now().UnixNano())
}

func benchFlow(b *testing.B, size int, fc flowCase) {
	mcasttest.Need(b)
	port := mcasttest.Port()
	cfg := func() multicast.Config {
		c := config(port)
		c.Heartbeat, c.PeerTimeout = 100*time.Millisecond, 5*time.Second
		if fc.peerTimeout > 0 {
			c.PeerTimeout = fc.peerTimeout
		}
		c.Logger = slog.New(slog.DiscardHandler)
		return c
	}
	open := func(c multicast.Config, in *counter) *multicast.Link {
		l, err := multicast.Open(c, in.deliver)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		return l
	}
	var ina, inb, inc counter
	cfgA := cfg()
	cfgA.MaxRate = fc.maxRate
	a := open(cfgA, &ina)
	cfgB := cfg()
	freeze, thaw := multicast.Freeze(&cfgB)
	bl := open(cfgB, &inb)
	b.Cleanup(thaw)
	cfgC := cfg()
	drop, _ := multicast.DropReads(&cfgC, 1)
	c := open(cfgC, &inc)
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().FlowReceivers != 2 {
		if time.Now().After(deadline) {
			b.Fatal("the receivers did not report")
		}
		time.Sleep(10 * time.Millisecond)
	}
	drop.Store(fc.loss)
	msg := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if fc.stop > 0 && i == b.N/4 {
			freeze()
			time.AfterFunc(fc.stop, thaw)
		}
		if err := a.Send(uuid.New(), msg); err != nil {
			b.Fatal(err)
		}
	}
	waitIdle := func(in *counter) {
		for last, idle := in.n.Load(), time.Now(); in.n.Load() < int64(b.N); {
			time.Sleep(time.Millisecond)
			if n := in.n.Load(); n != last {
				last, idle = n, time.Now()
			} else if time.Since(idle) > 2*time.Second {
				return
			}
		}
	}
	waitIdle(&inc)
	waitIdle(&inb)
	b.StopTimer()
	sa, sb, sc := a.Stats(), bl.Stats(), c.Stats()
	elapsed := time.Unix(0, inc.last.Load()).Sub(start)
	b.ReportMetric(float64(inc.n.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(2*int64(b.N)-inb.n.Load()-inc.n.Load()), "lost")
	b.ReportMetric(float64(sb.Lost+sc.Lost), "skipped")
	b.ReportMetric(float64(sa.FlowHeldMs), "held-ms")
	b.ReportMetric(float64(sa.FlowExcluded), "excluded")
	if fc.maxRate > 0 {
		b.ReportMetric(float64(sa.BytesSent)/time.Since(start).Seconds()/1e6, "MB/s-sent")
	}
	b.Logf("N %d: b got %d (lost %d), c got %d (lost %d, repaired %d); a resent %d, unavailable %d, window %d, held %d times",
		b.N, inb.n.Load(), sb.Lost, inc.n.Load(), sc.Lost, sc.Repaired, sa.Resent, sa.Unavailable, sb.Window, sa.FlowHeld)
}
