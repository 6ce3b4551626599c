package bus_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// Interest against a real server: the server forwards a client only what
// its listeners match, and nothing a listener should hear is lost to it.

// heardSeqs keeps the sequence numbers a listener heard.
type heardSeqs struct {
	mu   sync.Mutex
	seqs []int64
}

func (r *heardSeqs) listener(t *testing.T) func(bus.Message) {
	return func(m bus.Message) {
		var n int64
		if err := m.Decode(&n); err != nil {
			t.Errorf("event %s: %v", m.Event, err)
			return
		}
		r.mu.Lock()
		r.seqs = append(r.seqs, n)
		r.mu.Unlock()
	}
}

func (r *heardSeqs) max() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seqs) == 0 {
		return -1
	}
	return r.seqs[len(r.seqs)-1]
}

// seqPublisher emits "t0".."t7" in turn, the event's data its sequence
// number, until stopped.
type seqPublisher struct {
	next atomic.Int64 // the next sequence number to emit: every lower one has begun
	stop chan struct{}
	done chan struct{}
}

var seqNames = []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}

func startPublisher(t *testing.T, pub *bus.Client) *seqPublisher {
	p := &seqPublisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			n := p.next.Add(1) - 1
			if err := pub.Emit(seqNames[n%int64(len(seqNames))], n); err != nil {
				t.Error(err)
				return
			}
			if n%256 == 255 {
				time.Sleep(time.Millisecond) // keep the stream within what the listeners take
			}
		}
	}()
	return p
}

// end stops the publisher and returns how many events it emitted.
func (p *seqPublisher) end() int64 {
	close(p.stop)
	<-p.done
	return p.next.Load()
}

// checkFrom checks that r heard every event from..to-1 whose name
// pattern matches.
func checkFrom(t *testing.T, what, pattern string, r *heardSeqs, from, to int64) {
	t.Helper()
	re := regexp.MustCompile(`^(?:` + pattern + `)$`)
	r.mu.Lock()
	defer r.mu.Unlock()
	missed := 0
	first := int64(-1)
	for n := from; n < to; n++ {
		if re.MatchString(seqNames[n%int64(len(seqNames))]) && !slices.Contains(r.seqs, n) {
			if missed++; first < 0 {
				first = n
			}
		}
	}
	if missed > 0 {
		t.Errorf("%s (%q, On returned before event %d): missed %d events of %d..%d, the first %d", what, pattern, from, missed, from, to-1, first)
	}
}

// counted is a client's disconnects, which a test wants none of: a
// reconnection would hide events lost with the connection.
func counted(disconnects *atomic.Int32) bus.Option {
	return bus.OnDisconnect(func(error) { disconnects.Add(1) })
}

// TestInterestUnderTraffic adds and removes listeners while another
// client publishes: every listener hears every matching event emitted
// after its On returned, up to its Off or the end.
func TestInterestUnderTraffic(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	var drops atomic.Int32
	pub := ts.Dial(t, "A", counted(&drops))
	sub := ts.Dial(t, "A", counted(&drops))
	p := startPublisher(t, pub)
	patterns := []string{"t0", "t[12]", "t3|t7", "t.*", "t5", "t6"}
	type kept struct {
		pattern string
		r       *heardSeqs
		from    int64
	}
	var keep []kept
	rounds := 40
	if testing.Short() {
		rounds = 12
	}
	for i := range rounds {
		pattern := patterns[i%len(patterns)]
		r := &heardSeqs{}
		l, err := sub.On(pattern, r.listener(t))
		if err != nil {
			t.Fatal(err)
		}
		from := p.next.Load()
		if i%3 != 0 {
			keep = append(keep, kept{pattern, r, from})
			continue
		}
		// Heard a while, then removed: nothing missed meanwhile.
		until := from + 200
		routertest.WaitFor(t, "events for a listener", func() bool { return r.max() >= until })
		sub.Off(l)
		checkFrom(t, fmt.Sprintf("listener %d, removed", i), pattern, r, from, until)
	}
	total := p.end()
	// The publisher's last event: every one before it has arrived too.
	fence := routertest.Record(t, sub, "fence")
	if err := pub.Emit("fence", nil); err != nil {
		t.Fatal(err)
	}
	fence.WaitCount(t, "fence", 1)
	for i, k := range keep {
		checkFrom(t, fmt.Sprintf("listener %d", i), k.pattern, k.r, k.from, total)
	}
	if n := drops.Load(); n != 0 {
		t.Errorf("%d disconnects", n)
	}
	t.Logf("%d events", total)
}

// channelStat is one of a channel's counters, from showchannel.
func channelStat(t *testing.T, ts *routertest.Server, channel, key string) int {
	t.Helper()
	ctl := ts.Dial(t, router.ControlChannel, bus.Name("ctl"))
	defer ctl.Close()
	ans := routertest.Control(t, ctl, "showchannel", map[string]any{"channel": channel})
	stats, _ := ans["stats"].(map[string]any)
	n, ok := stats[key]
	if !ok {
		t.Fatalf("showchannel %s: no stats key %q in %v", channel, key, ans)
	}
	return int(toInt(n))
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case uint64:
		return int64(n)
	case int8:
		return int64(n)
	case uint8:
		return int64(n)
	case int16:
		return int64(n)
	case uint16:
		return int64(n)
	case int32:
		return int64(n)
	case uint32:
		return int64(n)
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return -1
}

// clientInterest is a client's patterns as showclient gives them, or
// "null" when it declared nothing (takes everything).
func clientInterest(t *testing.T, ts *routertest.Server, c *bus.Client) string {
	t.Helper()
	ctl := ts.Dial(t, router.ControlChannel, bus.Name("ctl"))
	defer ctl.Close()
	ans := routertest.Control(t, ctl, "showclient", map[string]any{"id": c.ID().String()})
	if e, ok := ans["error"]; ok {
		t.Fatalf("showclient: %v", e)
	}
	in, ok := ans["interest"]
	if !ok || in == nil {
		return "null"
	}
	list, _ := in.([]any)
	var out []string
	for _, p := range list {
		out = append(out, fmt.Sprint(p))
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

// TestInterestInListenerFullSpeed calls On and Off from a listener while
// a publisher emits as fast as it can into a small receive queue: the
// Applied frames sit behind events the dispatcher has not taken, and On
// must not wait for them.
func TestInterestInListenerFullSpeed(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	var drops atomic.Int32
	pub := ts.Dial(t, "A", counted(&drops))
	sub := ts.Dial(t, "A", bus.QueueLen(16), counted(&drops))
	const n = 20000
	var heard atomic.Int32
	var ls []*bus.Listener
	if _, err := sub.On("tick", func(m bus.Message) {
		k := heard.Add(1)
		if k%100 != 0 {
			return
		}
		l, err := sub.On(fmt.Sprintf("inner-%d", k), func(bus.Message) {})
		if err != nil {
			t.Error(err)
			return
		}
		if ls = append(ls, l); len(ls) > 8 {
			sub.Off(ls[0])
			ls = ls[1:]
		}
	}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := pub.Emit("tick", nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for heard.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := heard.Load(); got != n {
		t.Fatalf("heard %d ticks of %d: the dispatcher is stuck", got, n)
	}
	if d := drops.Load(); d != 0 {
		t.Errorf("%d disconnects", d)
	}
	want := []string{"tick"}
	for k := n - 700; k <= n; k += 100 { // the last 8 inner listeners
		want = append(want, fmt.Sprintf("inner-%d", k))
	}
	slices.Sort(want)
	routertest.WaitFor(t, "the final interest", func() bool { return clientInterest(t, ts, sub) == fmt.Sprint(want) })
}

// TestInterestBesideReceiveAll puts a client that declares nothing
// (ReceiveAll, as clients before version 4 do) beside one that listens
// to one event: the server forwards the first everything, the second
// only its event, and counts what it kept from it.
func TestInterestBesideReceiveAll(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	pub := ts.Dial(t, "A", bus.ReceiveAll())
	some := ts.Dial(t, "A")
	all := ts.Dial(t, "A", bus.ReceiveAll())
	onlyA := routertest.Record(t, some, "a")
	every := routertest.Record(t, all, ".*")
	if got := clientInterest(t, ts, some); got != "[a]" {
		t.Errorf("showclient: the filtered client's interest is %s, want [a]", got)
	}
	if got := clientInterest(t, ts, all); got != "null" {
		t.Errorf("showclient: the ReceiveAll client's interest is %s, want null", got)
	}
	before := channelStat(t, ts, "A", "filtered")
	const n = 100
	for i := range 2 * n {
		if err := pub.Emit([]string{"a", "b"}[i%2], i); err != nil {
			t.Fatal(err)
		}
	}
	onlyA.WaitCount(t, "a", n)
	every.WaitCount(t, "b", n)
	if got := every.Count("a"); got != n {
		t.Errorf("the ReceiveAll client heard %d a, want %d", got, n)
	}
	if got := channelStat(t, ts, "A", "filtered") - before; got < n {
		t.Errorf("%d events filtered out, want at least the %d b kept from the filtered client", got, n)
	}
}

// TestInterestOwnEmits checks that the client's own listeners hear its
// emits, which the server never sends back, whatever it declares.
func TestInterestOwnEmits(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	c := ts.Dial(t, "A")
	other := ts.Dial(t, "A")
	mine := routertest.Record(t, c, "x")
	theirs := routertest.Record(t, other, "x")
	if err := c.Emit("x", 1); err != nil {
		t.Fatal(err)
	}
	mine.WaitCount(t, "x", 1)
	theirs.WaitCount(t, "x", 1)
	fence := routertest.Record(t, c, "fence-.*")
	routertest.Fence(t, ts, "A", fence)
	if got := mine.Count("x"); got != 1 {
		t.Errorf("the emitter heard its own event %d times, want 1", got)
	}
}

// TestInterestPropagated checks that a propagated event is filtered by
// the receiver's interest, and keeps the channel it was emitted on.
func TestInterestPropagated(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	pub := ts.Dial(t, "A")
	sub := ts.Dial(t, "B")
	got := routertest.Record(t, sub, "e")
	before := channelStat(t, ts, "B", "filtered")
	for _, e := range []string{"f", "e", "f"} {
		if err := pub.Emit(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	got.WaitCount(t, "e", 1)
	if ch := got.Messages()[0].Channel; ch != "A" {
		t.Errorf("the propagated event's channel is %q, want A", ch)
	}
	routertest.WaitFor(t, "the f events counted as filtered on B", func() bool {
		return channelStat(t, ts, "B", "filtered")-before >= 2
	})
}

// TestInterestReconnect restarts the server: the client declares its
// listeners again in its Hello, a listener added while it is
// disconnected is declared too, and the new server filters by them.
// An event emitted after that listener's On returned, while the server
// was down, reaches it: the publisher keeps it for the new server, and
// the subscriber resumes through its new interest.
func TestInterestReconnect(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerIn(t, dir, oneChannel)
	var disconnects, reconnects, pubDrops atomic.Int32
	sub := ts.Dial(t, "A", counted(&disconnects), bus.OnReconnect(func() { reconnects.Add(1) }),
		bus.ReconnectBackoff(50*time.Millisecond, 200*time.Millisecond))
	pub := ts.Dial(t, "A", counted(&pubDrops), bus.ReconnectBackoff(50*time.Millisecond, 200*time.Millisecond))
	a := routertest.Record(t, sub, "a")
	if got := clientInterest(t, ts, sub); got != "[a]" {
		t.Fatalf("interest %s, want [a]", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the disconnects", func() bool { return disconnects.Load() == 1 && pubDrops.Load() == 1 })
	d := routertest.Record(t, sub, "d") // no server: On does not wait for one
	if err := pub.Emit("d", "while down"); err != nil {
		t.Fatal(err)
	}
	ts = routertest.NewServerIn(t, dir, oneChannel)
	routertest.WaitFor(t, "the reconnect", func() bool { return reconnects.Load() == 1 })
	routertest.WaitFor(t, "the interest declared again", func() bool { return clientInterest(t, ts, sub) == "[a d]" })
	d.WaitCount(t, "d", 1)
	routertest.WaitFor(t, "the publisher back", pub.Connected)
	before := channelStat(t, ts, "A", "filtered")
	for _, e := range []string{"a", "c", "d"} {
		if err := pub.Emit(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	a.WaitCount(t, "a", 1)
	d.WaitCount(t, "d", 2)
	routertest.WaitFor(t, "c filtered", func() bool { return channelStat(t, ts, "A", "filtered")-before >= 1 })
	if n := disconnects.Load(); n != 1 {
		t.Errorf("%d disconnects, want 1", n)
	}
}

// TestInterestFloodLive floods a client with On and Off against a real
// server: the server ends up with the final set of patterns.
func TestInterestFloodLive(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	var drops atomic.Int32
	c := ts.Dial(t, "A", counted(&drops))
	const workers, rounds, kinds = 4, 5000, 64
	var wg sync.WaitGroup
	nop := func(bus.Message) {}
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				l, err := c.On(fmt.Sprintf("p%d", (w*7+i)%kinds), nop)
				if err != nil {
					t.Error(err)
					return
				}
				if i < rounds-1 {
					l.Off()
				}
			}
		})
	}
	wg.Wait()
	var want []string
	for w := range workers {
		want = append(want, fmt.Sprintf("p%d", (w*7+rounds-1)%kinds))
	}
	slices.Sort(want)
	routertest.WaitFor(t, "the final interest", func() bool { return clientInterest(t, ts, c) == fmt.Sprint(want) })
	if n := drops.Load(); n != 0 {
		t.Errorf("%d disconnects", n)
	}
}

// TestInterestSince asks for history on a filtering server: the first
// Hello declares every event, so that the history reaches the listener
// registered after Dial, and that listener narrows the interest to its
// pattern.
func TestInterestSince(t *testing.T) {
	ts := routertest.NewServer(t, `"retainbytes": 1048576, "channels": {"A": {}}`)
	pub := ts.Dial(t, "A")
	fence := routertest.Record(t, ts.Dial(t, "A"), "a")
	for _, e := range []string{"a", "b", "a"} {
		if err := pub.Emit(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	fence.WaitCount(t, "a", 2) // the server has had all three
	sub := ts.Dial(t, "A", bus.Since(time.Minute))
	a := routertest.Record(t, sub, "a")
	a.WaitCount(t, "a", 2)
	// The listener's On need not wait for the narrowing: All, in force
	// until then, delivers its events too. So the test waits for it.
	routertest.WaitFor(t, "the interest narrowed to the first listener's", func() bool {
		return clientInterest(t, ts, sub) == "[a]"
	})
	before := channelStat(t, ts, "A", "filtered")
	for _, e := range []string{"b", "a"} {
		if err := pub.Emit(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	a.WaitCount(t, "a", 3)
	if got := channelStat(t, ts, "A", "filtered") - before; got < 1 {
		t.Errorf("the live b was not filtered out (filtered %d)", got)
	}
}
