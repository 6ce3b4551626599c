package router_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/natslink"
	"github.com/netcluster/netcluster/router/routertest"
)

// natsWindow, when NCBENCH_NATS_WINDOW sets it, is how many events a
// publisher keeps ahead of what its subscriber has received, as an
// application with flow control of its own would, so that a machine on
// which NATS drops events still measures without loss. By default
// nothing paces the publishers, as nothing paces a user's: what is lost
// is reported.
var natsWindow = func() int64 {
	n, _ := strconv.ParseInt(os.Getenv("NCBENCH_NATS_WINDOW"), 10, 64)
	return n
}()

// BenchmarkNATSBridge measures events per second of 128 bytes from a
// publisher on one ncserver to a subscriber on another, across one NATS
// server in process ("bridge"), and of nats.go pub/sub alone on the same
// NATS server ("nats"), in one run, with the events lost. The
// "jetstream" runs bridge the channel through a stream, on a NATS
// server of their own with JetStream (file storage in a temporary
// directory), each run with a durable consumer of its own.
func BenchmarkNATSBridge(b *testing.B) {
	const size = 128
	ns := startNATS(b, 0)
	url := ns.ClientURL()
	js := jsRuns{start: func() (string, int) {
		return startNATS(b, 0, func(o *server.Options) { o.JetStream, o.StoreDir = true, b.TempDir() }).ClientURL(), 0
	}}
	bridge := func(extra string, jetstream bool) func(*testing.B) {
		return func(b *testing.B) {
			url, _, extra := js.pick(url, 0, extra, jetstream)
			s1 := routertest.NewServer(b, natsMembers(url, extra, `"channels": {"A": {"propagatetonats": true}}`))
			s2 := routertest.NewServer(b, natsMembers(url, extra, `"channels": {"A": {"acceptfromnats": true}}`))
			before, droppedIn := natsStats(b, s1), natsStats(b, s2).DroppedIn
			benchBridge(b, size, s1.Dial(b, "A"), s2.Dial(b, "A"), nil)
			after := natsStats(b, s1)
			b.ReportMetric(float64(after.EventsOut-before.EventsOut)/float64(max(1, after.MsgsOut-before.MsgsOut)), "events/msg")
			// Where the receiving server counted what it lost.
			b.ReportMetric(float64(natsStats(b, s2).DroppedIn-droppedIn), "dropped_in")
		}
	}
	b.Run("bridge-128B", bridge("", false))
	b.Run("bridge-packed-128B", bridge(`"pack": true`, false))
	b.Run("bridge-jetstream-128B", bridge("", true))
	b.Run("bridge-jetstream-packed-128B", bridge(`"pack": true`, true))
	b.Run("nats-128B", func(b *testing.B) { benchRawNATS(b, url, size, false, nil) })
	b.Run("nats-headers-128B", func(b *testing.B) { benchRawNATS(b, url, size, true, nil) })
}

// jsRuns gives the NATS bridge benchmarks' JetStream runs a NATS
// server of their own with JetStream, which start makes (its URL and
// pid) for the first of them, and each run a durable consumer of its
// own.
type jsRuns struct {
	start    func() (url string, pid int)
	url      string
	pid      int
	durables int
}

// pick returns the NATS server (URL and pid) and the configuration's
// extra keys of a run: url, pid and extra for a plain one; for a
// JetStream one, the JetStream server, and extra with JetStream on, no
// catch-up delay and a durable of the run's own.
func (j *jsRuns) pick(url string, pid int, extra string, jetstream bool) (string, int, string) {
	if !jetstream {
		return url, pid, extra
	}
	if j.url == "" {
		j.url, j.pid = j.start()
	}
	j.durables++
	js := fmt.Sprintf(`"jetstream": true, "catchup": "0s", "durable": "bench%d"`, j.durables)
	return j.url, j.pid, strings.TrimPrefix(extra+", "+js, ", ")
}

// benchBridge measures events from pub, a client of one ncserver, to
// sub, a client of another.
func benchBridge(b *testing.B, size int, pub, sub *bus.Client, cpu cpuMeter) {
	a := &arrivals{want: int64(b.N)}
	sub.On("bench", func(bus.Message) { a.add() })
	probe(b, pub, routertest.Record(b, sub, "probe"))
	data := bus.RawData(append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(size)), make([]byte, size)...))
	benchPaced(b, size, a, cpu, func() error { return pub.Emit("bench", data) })
}

// arrivals counts what a benchmark's subscriber receives, and notes when
// the last of the events it wants arrived: the clock is read once, not
// per event, as neither a publisher nor a subscriber of a user's reads
// it.
type arrivals struct {
	got    atomic.Int64
	want   int64        // set before the subscriber starts
	lastAt atomic.Int64 // Unix nanoseconds when got reached want; 0 before
}

func (a *arrivals) add() {
	if a.got.Add(1) == a.want {
		a.lastAt.Store(time.Now().UnixNano())
	}
}

// benchRawNATS measures nats.go pub/sub alone, with the headers the
// bridge sends (withHeaders) or none.
func benchRawNATS(b *testing.B, url string, size int, withHeaders bool, cpu cpuMeter) {
	{
		pc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer pc.Close()
		sc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer sc.Close()
		a := &arrivals{want: int64(b.N)}
		// nats.go's default pending limits, as a user's subscriber has.
		if _, err := sc.Subscribe("bench", func(*nats.Msg) { a.add() }); err != nil {
			b.Fatal(err)
		}
		sc.Flush()
		m := nats.NewMsg("bench")
		m.Data = make([]byte, size)
		if withHeaders {
			id := uuid.New()
			for _, k := range []string{natslink.HeaderID, natslink.HeaderOrigin, natslink.HeaderSender} {
				m.Header.Set(k, id.String())
			}
			m.Header.Set(natslink.HeaderEvent, "bench")
		}
		benchPaced(b, size, a, cpu, func() error { return pc.PublishMsg(m) })
	}
}

// cpuMeter returns the CPU time that each process of a benchmark has
// used so far, all its threads, user and system, by the process's name
// in the benchmark; ok is false where it cannot tell. nil: not measured.
type cpuMeter func() (used map[string]time.Duration, ok bool)

// benchPaced emits b.N events with emit, as fast as it takes them (or
// at most natsWindow of them ahead of what arrived, when set), waits for
// them all, and reports events/s up to the last arrival and the events
// lost. When some are lost, the last arrival is when the count last
// moved, to the millisecond. With cpu, it reports the CPU time the
// processes used per event that arrived, each and in all: on a shared
// machine, a steadier measure of what a setup costs than its events/s.
func benchPaced(b *testing.B, size int, a *arrivals, cpu cpuMeter, emit func() error) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var cpu0 map[string]time.Duration
	if cpu != nil {
		cpu0, _ = cpu()
	}
	start := time.Now()
	for i := range b.N {
		var stalled time.Time
		for spins := 0; natsWindow > 0 && int64(i)-a.got.Load() > natsWindow; spins++ {
			if spins == 0 {
				stalled = time.Now()
			}
			if spins < 64 {
				runtime.Gosched()
			} else {
				time.Sleep(20 * time.Microsecond)
			}
			if spins%1024 == 0 && time.Since(stalled) > 10*time.Second {
				b.Fatalf("nothing arrived for 10 s: %d of %d emitted arrived", a.got.Load(), i)
			}
		}
		if err := emit(); err != nil {
			b.Fatal(err)
		}
	}
	last, moved := a.got.Load(), time.Now()
	for a.got.Load() < int64(b.N) && time.Since(moved) < 2*time.Second {
		time.Sleep(time.Millisecond)
		if n := a.got.Load(); n != last {
			last, moved = n, time.Now()
		}
	}
	b.StopTimer()
	n := a.got.Load()
	end := moved
	if at := a.lastAt.Load(); at != 0 {
		end = time.Unix(0, at)
	}
	b.ReportMetric(float64(n)/end.Sub(start).Seconds(), "events/s")
	b.ReportMetric(float64(int64(b.N)-n), "lost")
	if cpu != nil && n > 0 {
		if cpu1, ok := cpu(); ok && cpu0 != nil {
			var sum time.Duration
			for name, d := range cpu1 {
				d -= cpu0[name]
				sum += d
				b.ReportMetric(float64(d)/float64(n), name+"-cpu-ns/event")
			}
			b.ReportMetric(float64(sum)/float64(n), "cpu-ns/event")
		}
	}
}

// BenchmarkNATSRoundTrip measures a request from a client of one
// ncserver answered by a client of another, through one NATS server in
// process, one request at a time, in both of the bridge's formats: the
// request crosses alone (in a pack of one, packed), the reply on the
// asker's server's subject. It reports the median and 99th percentile.
func BenchmarkNATSRoundTrip(b *testing.B) {
	ns := startNATS(b, 0)
	url := ns.ClientURL()
	for _, f := range []struct{ name, extra string }{{"single", ""}, {"packed", `"pack": true`}} {
		b.Run(f.name, func(b *testing.B) {
			s1, s2 := natsNode(b, url, f.extra), natsNode(b, url, f.extra)
			answer := s2.Dial(b, "A")
			if _, err := answer.On("ask", func(m bus.Message) { answer.Reply(m, bus.RawData(m.Data)) }); err != nil {
				b.Fatal(err)
			}
			ask := s1.Dial(b, "A")
			probe(b, ask, routertest.Record(b, s2.Dial(b, "A"), "probe"))
			rtts := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := ask.Request(ctx, "ask", bus.RawData{0xc0})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
		})
	}
}
