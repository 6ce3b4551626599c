package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// soakEvent is what the soak's publishers emit: who, which one, and
// fill of a random size, checked on arrival.
type soakEvent struct {
	P    string // the publishing client's run, unique in the test
	N    int    // from 0, +1 per event of that run
	Fill []byte // N's low byte, repeated
}

// soakRecorder is a subscriber that checks order as events arrive: from
// each run, numbers must only grow. It counts what each run delivered.
type soakRecorder struct {
	mu    sync.Mutex
	last  map[string]int
	count map[string]int
	bad   []string
}

func newSoakRecorder(c *bus.Client) *soakRecorder {
	r := &soakRecorder{last: map[string]int{}, count: map[string]int{}}
	c.On("soak", func(m bus.Message) {
		var ev soakEvent
		err := m.Decode(&ev)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, err.Error())
			return
		}
		for _, b := range ev.Fill {
			if b != byte(ev.N) {
				r.bad = append(r.bad, fmt.Sprintf("%s #%d: damaged fill", ev.P, ev.N))
				break
			}
		}
		if last, ok := r.last[ev.P]; ok && ev.N <= last {
			r.bad = append(r.bad, fmt.Sprintf("%s #%d after #%d", ev.P, ev.N, last))
		}
		r.last[ev.P] = ev.N
		r.count[ev.P]++
	})
	return r
}

// has reports whether every run in want has delivered exactly its
// count, and what is wrong so far.
func (r *soakRecorder) has(want map[string]int) (bool, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, n := range want {
		if r.count[p] != n {
			return false, r.bad
		}
	}
	return true, r.bad
}

// soakPublishers runs n publishers on s's channel A until stop closes:
// each dials, emits a random number of events of random sizes, and
// closes, again and again. It returns, once they have stopped, how many
// events each run emitted.
func soakPublishers(t *testing.T, s *routertest.Server, n int, prefix string, stop <-chan struct{}) func() map[string]int {
	var (
		mu   sync.Mutex
		runs = map[string]int{}
		wg   sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			for run := 0; ; run++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("%s-%d-%d", prefix, i, run)
				c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(s.Template), bus.Name(p), bus.Reconnect(false))
				if err != nil {
					t.Errorf("%s: dial: %v", p, err)
					return
				}
				k := 1 + rand.IntN(100)
				for j := range k {
					size := rand.IntN(2048)
					if rand.IntN(20) == 0 {
						size = rand.IntN(64 << 10)
					}
					fill := make([]byte, size)
					for x := range fill {
						fill[x] = byte(j)
					}
					if err := c.Emit("soak", soakEvent{P: p, N: j, Fill: fill}); err != nil {
						t.Errorf("%s: emit: %v", p, err)
						k = j
						break
					}
					if j%10 == 0 {
						time.Sleep(time.Millisecond) // about a thousand events a second each
					}
				}
				if err := c.Close(); err != nil {
					t.Errorf("%s: close: %v", p, err)
				}
				mu.Lock()
				runs[p] = k
				mu.Unlock()
			}
		})
	}
	return func() map[string]int {
		wg.Wait()
		return runs
	}
}

// soakListeners has subscribers join s's channel A and leave again
// until stop closes, each hearing events for a random while.
func soakListeners(t *testing.T, s *routertest.Server, stop <-chan struct{}) func() {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(s.Template), bus.Name("soak-listener"), bus.Reconnect(false))
			if err != nil {
				// The receiving server may be restarting.
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
					continue
				}
			}
			r := newSoakRecorder(c)
			select {
			case <-stop:
			case <-time.After(time.Duration(rand.IntN(200)) * time.Millisecond):
			}
			c.Close()
			if _, bad := r.has(nil); len(bad) > 0 {
				t.Errorf("a passing listener heard events out of order or damaged: %v", bad[:min(len(bad), 5)])
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	return wg.Wait
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestSoak runs the bus for a minute (3 seconds with -short): publishers
// come and go, emitting events of random sizes, from 0 to 64 KiB;
// subscribers join and leave; the receiving host drops 5% of the
// datagrams; halfway, the receiving server restarts under a publisher
// and two subscribers that stay. Every event of a publisher that ran
// while the receiving server was up reaches each staying subscriber
// exactly once, in order; those of the publisher that ran through the
// restart arrive at most once, in order. At the end, no goroutine,
// descriptor or memory is left over: the heap at the end is within
// 16 MiB of what it was after the first half.
func TestSoak(t *testing.T) {
	d := 60 * time.Second
	if testing.Short() {
		d = 3 * time.Second
	}
	// A history of 16 MiB lasts more than a second of this load, time
	// for a datagram's repair to be lost and asked for again a few times.
	// A publisher waits for room in the send queue for peertimeout and a
	// heartbeat, then drops, counted: with every package's tests racing
	// on two cores, the queue stayed full past 2 s, so the soak, which
	// wants every event exactly once, allows 5 s.
	const history = 16 << 20
	net := newLossyNet(t, 5, fmt.Sprintf(`"gaptimeout": "20s", "history": %d, "maxpending": 67108864, "peertimeout": "5s",`, history))
	pub := net.pub
	dialSub := func(name string) *bus.Client {
		return net.sub.Dial(t, "A", bus.Name(name), bus.ReconnectBackoff(10*time.Millisecond, 100*time.Millisecond))
	}
	stay := []*soakRecorder{newSoakRecorder(pub.Dial(t, "A", bus.Name("local"))), newSoakRecorder(dialSub("stay-1")), newSoakRecorder(dialSub("stay-2"))}

	// The publisher that runs through the restart.
	steady := pub.Dial(t, "A", bus.Name("steady"))
	var steadyN atomic.Int64
	var steadyWG sync.WaitGroup
	steadyStop := make(chan struct{})
	stopSteady := sync.OnceFunc(func() {
		close(steadyStop)
		steadyWG.Wait()
	})
	t.Cleanup(stopSteady) // before the client closes, should the test fail
	steadyWG.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-steadyStop:
				return
			case <-time.After(time.Millisecond):
			}
			if err := steady.Emit("soak", soakEvent{P: "steady", N: n, Fill: []byte{byte(n)}}); err != nil {
				t.Errorf("steady: emit: %v", err)
				return
			}
			steadyN.Store(int64(n + 1))
		}
	})

	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	phase := func(name string) {
		stop := make(chan struct{})
		runs := soakPublishers(t, pub, 4, name, stop)
		listeners := soakListeners(t, net.sub, stop)
		time.Sleep(d / 2)
		// Go on until the sender's history is full, or freed by what its
		// receivers reported, so that what the heap holds after each
		// half compares.
		routertest.WaitFor(t, "the sender's history to fill or be freed", func() bool {
			s := pub.NetStats().Link
			return s.HistoryBytes > history*15/16 || s.HistoryReleased > 0
		})
		close(stop)
		want := runs()
		listeners()
		for i, r := range stay {
			var bad []string
			waitFor(t, 30*time.Second, func() bool {
				var ok bool
				ok, bad = r.has(want)
				return ok || len(bad) > 0
			}, func() string {
				r.mu.Lock()
				defer r.mu.Unlock()
				var short []string
				for p, n := range want {
					if r.count[p] != n {
						short = append(short, fmt.Sprintf("%s %d of %d", p, r.count[p], n))
					}
				}
				total := 0
				for _, n := range want {
					total += n
				}
				return fmt.Sprintf("subscriber %d has not heard all of %s: %d runs short: %v\n%d emitted\nsender %+v\nreceiver %+v\nsender channels %+v\nreceiver channels %+v",
					i+1, name, len(short), short[:min(len(short), 10)], total, pub.NetStats(), net.sub.NetStats(), pub.Channels(), net.sub.Channels())
			})
			if len(bad) > 0 {
				t.Fatalf("subscriber %d: %d events out of order or damaged: %v", i+1, len(bad), bad[:min(len(bad), 5)])
			}
		}
		total := 0
		for _, n := range want {
			total += n
		}
		t.Logf("%s: %d publisher runs, %d events, each heard exactly once by both staying subscribers", name, len(want), total)
	}

	phase("before")
	mid := heapAfterGC()
	net.restartSub(t)
	routertest.WaitFor(t, "the subscribers to reconnect", func() bool {
		cs, _ := net.sub.Clients("A")
		return len(cs) >= 2
	})
	routertest.WaitFor(t, "the servers to see each other", func() bool {
		return len(pub.Peers()) == 1 && len(net.sub.Peers()) == 1 && pub.Peers()[0].Node == net.sub.Node()
	})
	phase("after")
	stopSteady()

	st := net.sub.NetStats().Link
	t.Logf("receiver after the restart: %d datagrams, %d repaired, %d NAKs sent, %d lost; steady publisher emitted %d",
		st.DatagramsReceived, st.Repaired, st.NAKsSent, st.Lost, steadyN.Load())
	for i, r := range stay {
		r.mu.Lock()
		n := r.count["steady"]
		r.mu.Unlock()
		if n == 0 || int64(n) > steadyN.Load() {
			t.Errorf("subscriber %d heard %d of the steady publisher's %d events", i+1, n, steadyN.Load())
		}
	}

	routertest.WaitFor(t, "descriptors and goroutines to return to where they were", func() bool {
		return openFDs(t) <= fds && runtime.NumGoroutine() <= goroutines
	})
	end := heapAfterGC()
	t.Logf("heap after the first half %d MiB, at the end %d MiB", mid>>20, end>>20)
	if end > mid+16<<20 {
		t.Errorf("heap grew from %d MiB after the first half to %d MiB at the end", mid>>20, end>>20)
	}
}

// waitFor polls cond until it holds, or fails the test after d with
// what says.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
