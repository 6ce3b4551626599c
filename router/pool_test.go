package router_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// The server reads each event into a pooled buffer that the queues of its
// receivers share by reference (channel.Handler). These tests look for a
// buffer released too early, which would send one event's bytes in place
// of another's, and for one never released. Run them, and the rest of the
// suite, with -tags ncpoison as well: released buffers are then filled
// with garbage instead of reused, and channel.LiveBuffers counts them.

// checkedData is the data of event seq from publisher pub: a string that
// says who sent it and which it is, then size bytes that depend on both.
func checkedData(pub, seq, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "p%d s%d ", pub, seq)
	for i := range size {
		b.WriteByte(byte('a' + (pub*7+seq+i)%26))
	}
	return b.String()
}

// checkData parses and verifies checkedData's output.
func checkData(s string) (pub, seq int, err error) {
	f := strings.SplitN(s, " ", 3)
	if len(f) != 3 || len(f[0]) < 2 || len(f[1]) < 2 {
		return 0, 0, fmt.Errorf("damaged event: %.40q", s)
	}
	pub, err1 := strconv.Atoi(f[0][1:])
	seq, err2 := strconv.Atoi(f[1][1:])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("damaged event: %.40q", s)
	}
	if want := checkedData(pub, seq, len(f[2])); s != want {
		return 0, 0, fmt.Errorf("damaged event p%d s%d of %d bytes", pub, seq, len(s))
	}
	return pub, seq, nil
}

// sizeFor varies event sizes over many of the pools' size classes, with
// now and then one too large to pool.
func sizeFor(seq int) int {
	if seq%97 == 13 {
		return 80 << 10
	}
	return (seq * 37) % 5000
}

// checker keeps what one receiver heard.
type checker struct {
	name    string
	mu      sync.Mutex
	next    map[int]int // per publisher, the sequence number expected next
	got     atomic.Int64
	damaged atomic.Int64
	errs    []string
}

func newChecker(name string) *checker { return &checker{name: name, next: map[int]int{}} }

func (c *checker) check(s string) {
	pub, seq, err := checkData(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && seq != c.next[pub] {
		err = fmt.Errorf("from publisher %d got event %d, want %d", pub, seq, c.next[pub])
	}
	if err != nil {
		c.damaged.Add(1)
		if len(c.errs) < 5 {
			c.errs = append(c.errs, err.Error())
		}
		return
	}
	c.next[pub] = seq + 1
	c.got.Add(1)
}

func (c *checker) report(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.damaged.Load(); n != 0 {
		t.Errorf("%s: %d damaged or misordered events: %s", c.name, n, strings.Join(c.errs, "; "))
	}
}

// TestPooledFramesIntact runs a stream of events of many sizes from two
// publishers through a server while everything that releases a frame
// buffer happens: binary receivers on the channel and on one it
// propagates to, a JSON receiver whose first events are held while its
// protocol is unknown, clients that never read and are dropped as slow,
// clients that leave mid-stream, and at last a shutdown while the
// publishers still send. Every event a receiver gets must be intact and
// in order, and once the server has stopped no buffer may be held.
func TestPooledFramesIntact(t *testing.T) {
	const (
		pubs   = 2
		events = 1500 // per publisher, before the shutdown
		window = 48   // events a publisher stays ahead of the slowest receiver
	)
	// A drops its slow clients at maxpending; B holds its publishers for
	// them until stalltimeout: both ways release the queued buffers.
	ts := routertest.NewServer(t, `"maxpending": 1048576, "stalltimeout": "200ms",
		"channels": {"A": {"propagatetochannels": "B", "overflow": "drop"}, "B": {}}`)
	ts.Level.Set(0) // info: the leavers would fill the log
	var steady []*checker
	// The steady receivers' connections, to find them still there.
	type connOf struct {
		channel string
		id      uuid.UUID
	}
	var steadyConns []connOf
	for i, on := range []string{"A", "A", "A", "B", "B"} {
		c := newChecker(fmt.Sprintf("receiver %d on %s", i, on))
		steady = append(steady, c)
		bc := ts.Dial(t, on)
		steadyConns = append(steadyConns, connOf{on, bc.ID()})
		bc.On("ev", func(m bus.Message) {
			var s string
			if err := m.Decode(&s); err != nil {
				c.damaged.Add(1)
				return
			}
			c.check(s)
		})
	}
	// A JSON client that stays silent: the server holds its events until
	// the JSON grace says what it is.
	jc := dialJSON(t, ts.Path("A"))
	jc.nc.SetDeadline(time.Time{})
	jcheck := newChecker("JSON receiver")
	steady = append(steady, jcheck)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := jc.next()
			if err != nil {
				return
			}
			if m["event"] == channel.ErrorEvent {
				continue
			}
			s, _ := m["data"].(string)
			jcheck.check(s)
		}
	}()
	firstConns := map[uuid.UUID]uint64{}
	for _, sc := range steadyConns {
		if firstConns[sc.id] = connNumber(ts, sc.channel, sc.id); firstConns[sc.id] == 0 {
			t.Fatalf("the receiver %v is not among the clients of %s", sc.id, sc.channel)
		}
	}
	// Clients that never read: dropped as slow, with their queued
	// buffers, once their queues pass maxpending (on A) or they have
	// taken nothing for stalltimeout (on B).
	for range 2 {
		dialRaw(t, ts, "A").hello()
		dialRaw(t, ts, "B").hello()
	}
	// Clients that come and go mid-stream, some of them while their
	// queue is being written.
	stopLeavers := make(chan struct{})
	leavers := newChecker("leavers")
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLeavers:
					return
				default:
				}
				c, err := bus.Dial(context.Background(), []string{"A", "B"}[i], bus.Socket(ts.Path([]string{"A", "B"}[i])))
				if err != nil {
					return // the server is shutting down
				}
				heard := make(chan struct{}, 1)
				c.On("ev", func(m bus.Message) {
					var s string
					if err := m.Decode(&s); err != nil {
						leavers.damaged.Add(1)
					} else if _, _, err := checkData(s); err != nil {
						leavers.damaged.Add(1)
					}
					select {
					case heard <- struct{}{}:
					default:
					}
				})
				select {
				case <-heard:
				case <-time.After(time.Second):
				}
				c.Close()
			}
		}()
	}

	var sent atomic.Int64
	slowest := func() int64 {
		m := steady[0].got.Load()
		for _, c := range steady {
			m = min(m, c.got.Load())
		}
		return m
	}
	publish := func(pub *bus.Client, p, from, to int, windowed bool) error {
		for seq := from; seq < to; seq++ {
			for stalled := time.Now().Add(10 * time.Second); windowed && sent.Load()-slowest() > window; {
				if time.Now().After(stalled) {
					return fmt.Errorf("the slowest receiver got %d events of %d and no more for 10 s", slowest(), sent.Load())
				}
				time.Sleep(100 * time.Microsecond)
			}
			if err := pub.Emit("ev", checkedData(p, seq, sizeFor(seq))); err != nil {
				return err
			}
			sent.Add(1)
		}
		return nil
	}
	publishers := make([]*bus.Client, pubs)
	for p := range pubs {
		publishers[p] = ts.Dial(t, "A")
	}
	var pwg sync.WaitGroup
	for p := range pubs {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			if err := publish(publishers[p], p, 0, events, true); err != nil {
				t.Errorf("publisher %d: %v", p, err)
			}
		}()
	}
	pwg.Wait()
	if t.Failed() {
		for _, c := range steady {
			c.report(t)
		}
		t.FailNow()
	}
	routertest.WaitFor(t, "every receiver to get every event", func() bool { return slowest() == pubs*events })
	// The clients that never read must be gone before the shutdown: one
	// still there would hold the shutdown's flush until its deadline.
	// (Counting slow consumers is not enough: a leaver caught while it
	// closed counts as one too.)
	routertest.WaitFor(t, "the clients that never read to be dropped", func() bool {
		for _, name := range []string{"A", "B"} {
			clients, _ := ts.Clients(name)
			for _, c := range clients {
				if c.Name == "raw" {
					return false
				}
			}
		}
		return true
	})
	// Each steady receiver is still on its first connection: none was
	// dropped as slow. (Counting the channel's clients is not enough:
	// a leaver connected at the time would count as one.)
	for _, sc := range steadyConns {
		if conn := connNumber(ts, sc.channel, sc.id); conn != firstConns[sc.id] {
			t.Errorf("the receiver %v on %s is on connection %d, want its first, %d", sc.id, sc.channel, conn, firstConns[sc.id])
		}
	}

	// Shut down while the publishers send as fast as they can.
	for p := range pubs {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			publish(publishers[p], p, events, events+100000, false)
		}()
	}
	routertest.WaitFor(t, "the stream to restart", func() bool { return sent.Load() > pubs*events+200 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	close(stopLeavers)
	pwg.Wait()
	jc.nc.Close()
	wg.Wait()
	for _, c := range append(steady, leavers) {
		c.report(t)
	}
	if n := channel.LiveBuffers(); n != 0 {
		t.Errorf("%d frame buffers still held after the server stopped", n)
	}
}

// rawFanout is a publisher and receivers on raw sockets, which allocate
// nothing per event, so that what a benchmark or AllocsPerRun counts is
// the server's.
type rawFanout struct {
	pub   *rawConn
	frame []byte
	recv  []*rawConn
	buf   []byte
}

func newRawFanout(t testing.TB, subs int) *rawFanout {
	// A ring of retained events small enough to fill during the warm-up:
	// from then on each event retained evicts one, whose buffer goes back
	// to its pool.
	ts := routertest.NewServer(t, `"retainbytes": 65536, "channels": {"A": {}}`)
	f := &rawFanout{}
	for range subs {
		rc := dialRaw(t, ts, "A")
		rc.hello()
		rc.nc.SetDeadline(time.Time{})
		f.recv = append(f.recv, rc)
	}
	f.publisher(t, ts)
	return f
}

// publisher dials f's publisher on channel A of ts and makes the frame
// it sends, event "bench" with 128 bytes of data; it returns the
// message, for frames of other events.
func (f *rawFanout) publisher(t testing.TB, ts *routertest.Server) wire.Message {
	f.pub = dialRaw(t, ts, "A")
	f.pub.hello()
	f.pub.nc.SetDeadline(time.Time{})
	m := wire.Message{ID: uuid.New(), Origin: f.pub.w.Node, Sender: f.pub.id, Channel: "A", Event: "bench",
		Data: append([]byte{0xc4, 128}, make([]byte, 128)...)}
	f.frame = wire.AppendEvent(nil, &m)
	f.buf = make([]byte, len(f.frame))
	return m
}

// deadline sets one deadline, a minute away, on all of f's connections
// and on those of more, so that a test whose server stops answering
// fails then instead of hanging until the test binary's timeout. It is
// set once: a deadline set before each read would allocate, and count
// in the measure.
func (f *rawFanout) deadline(more ...*rawConn) {
	at := time.Now().Add(time.Minute)
	for _, rc := range append(append([]*rawConn{f.pub}, f.recv...), more...) {
		rc.nc.SetDeadline(at)
	}
}

// TestServerAllocs checks that the server allocates nothing to route an
// event from one client to four, once its pools are warm.
func TestServerAllocs(t *testing.T) {
	if poisonBuild {
		t.Skip("with -tags ncpoison, buffers are never reused")
	}
	f := newRawFanout(t, 4)
	f.deadline()
	round := func() {
		f.pub.write(f.frame)
		for _, rc := range f.recv {
			if _, err := io.ReadFull(rc.nc, f.buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 100 {
		round()
	}
	if n := serverAllocs(round); n != 0 {
		t.Errorf("%v allocations per event routed to 4 clients, want 0", n)
	}
}

// serverAllocs is the fewest allocations per round of three measures of
// 1000 rounds. The count is the whole process's: on a loaded machine a
// writer descheduled between its write and its release of the frame's
// buffer makes the next read take a fresh one, now and then. A cost per
// event shows in every measure.
func serverAllocs(round func()) float64 {
	least := testing.AllocsPerRun(1000, round)
	for i := 0; i < 2 && least > 0; i++ {
		least = min(least, testing.AllocsPerRun(1000, round))
	}
	return least
}

// BenchmarkFanoutRaw measures the server alone routing 128-byte events
// from one publisher to S receivers, all on raw sockets that allocate
// nothing, so that allocs/op is the server's. The publisher writes 64
// frames at a time and stays at most a window ahead of the receivers.
func BenchmarkFanoutRaw(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run(fmt.Sprintf("1to%d", subs), func(b *testing.B) {
			runFanout(b, newRawFanout(b, subs))
		})
	}
}

// runFanout runs BenchmarkFanoutRaw's measure on f: every receiver of
// f.recv reads every event.
func runFanout(b *testing.B, f *rawFanout) {
	const batch, window = 64, 4096
	subs := len(f.recv)
	counts := make([]atomic.Int64, subs)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, rc := range f.recv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			var bytes int64
			for {
				n, err := rc.nc.Read(buf)
				bytes += int64(n)
				counts[i].Store(bytes / int64(len(f.frame)))
				if err != nil {
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	burst := make([]byte, 0, batch*len(f.frame))
	for range batch {
		burst = append(burst, f.frame...)
	}
	slowest := func() int64 { return slowestCount(counts) }
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		for int64(sent)-slowest() > window {
			time.Sleep(20 * time.Microsecond)
		}
		k := min(batch, b.N-sent)
		f.pub.write(burst[:k*len(f.frame)])
		sent += k
	}
	for slowest() < int64(b.N) {
		time.Sleep(20 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	close(done)
	for _, rc := range f.recv {
		rc.nc.Close()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N*subs)/elapsed.Seconds(), "deliveries/s")
}

// connNumber is channel name's number for the connection of the client
// id, or 0 when it has none (the numbers start at 1).
func connNumber(ts *routertest.Server, name string, id uuid.UUID) uint64 {
	clients, _ := ts.Clients(name)
	for _, c := range clients {
		if c.ID == id {
			return c.Conn
		}
	}
	return 0
}
