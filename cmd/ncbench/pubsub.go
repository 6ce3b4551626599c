package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/bus"
)

// streamSpec describes one publish/subscribe run.
type streamSpec struct {
	name       string
	pubChannel string // where publishers emit
	subChannel string // where subscribers listen (pubChannel, or one it propagates to)
	pubs, subs int
	size       int
	count      uint64        // events per publisher, when duration is 0
	duration   time.Duration // how long publishers emit, when not 0
	window     uint64        // events a publisher may be ahead of its slowest subscriber; 0: no limit
	work       time.Duration // what each subscriber's listener spends on each event
	stop       <-chan struct{}
}

// stallTimeout is how long a run waits for a delivery before it counts
// what has not arrived as lost.
const stallTimeout = 3 * time.Second

const benchEvent = "bench"

// subscriber counts what one subscribing client receives.
type subscriber struct {
	c *bus.Client
	// counters are touched only by the client's dispatcher goroutine; they
	// are read after Close, which waits for it.
	counters  []seqCounter
	delivered []atomic.Uint64 // per publisher: counters[i].ok, for progress
	// reached is, per publisher, counters[i].next: how far into the
	// publisher's sequence the subscriber has got, events lost on the
	// way included. Flow control goes by it, so that a subscriber that
	// lost events (and reconnected) does not hold its publishers back.
	reached []atomic.Uint64
	// floor is, per publisher, what it had sent when the subscriber last
	// reconnected: what the subscriber has not received of that is lost,
	// and flow control waits for no more of it.
	floor   []atomic.Uint64
	corrupt atomic.Uint64
	err     atomic.Pointer[error] // the first error reported
	// disconnects counts connections that ended while the client
	// reconnects, as clients on default options do.
	disconnects atomic.Uint64
}

func (s *subscriber) total() uint64 {
	var n uint64
	for i := range s.delivered {
		n += s.delivered[i].Load()
	}
	return n
}

func (s *subscriber) gone() bool {
	select {
	case <-s.c.Done():
		return true
	default:
		return false
	}
}

// windowBytes bounds what all publishers together may have in flight
// to one subscriber: half the server's default maxpending, so that flow
// control never lets the server drop a subscriber that keeps up.
const windowBytes = 4 << 20

// frameOverhead is about what an event frame adds to its data: length
// prefix, envelope, three ids, channel and event names.
const frameOverhead = 80

// effectiveWindow caps the window in events so that pubs publishers
// together stay within windowBytes.
func effectiveWindow(window uint64, pubs, size int) uint64 {
	if window == 0 {
		return 0
	}
	return max(min(window, uint64(windowBytes/((size+frameOverhead)*pubs))), 2)
}

// streamRun is one publish/subscribe run in progress: its clients, what
// each publisher has sent, and the gates where publishers wait for their
// subscribers.
type streamRun struct {
	e        *env
	sp       streamSpec
	subs     []*subscriber
	pubs     []*bus.Client
	gates    []gate
	sent     []atomic.Uint64 // per publisher
	stopping atomic.Bool     // set: publishers stop emitting
	deadline time.Time       // zero: no deadline
	closers  []*bus.Client   // every client dialed, closed at the end
}

// runStream runs publishers and subscribers and counts what arrives.
func (e *env) runStream(ctx context.Context, sp streamSpec) (Result, error) {
	sp.window = effectiveWindow(sp.window, sp.pubs, sp.size)
	r := &streamRun{
		e: e, sp: sp, subs: make([]*subscriber, sp.subs), pubs: make([]*bus.Client, sp.pubs),
		gates: newGates(sp.pubs), sent: make([]atomic.Uint64, sp.pubs),
	}
	defer r.closeClients()
	if err := r.dialSubscribers(ctx); err != nil {
		return Result{}, err
	}
	if err := r.dialPublishers(ctx); err != nil {
		return Result{}, err
	}
	stopProgress := e.progress(sp.name, func() (uint64, uint64) { return r.totalSent(), r.delivered() })
	defer stopProgress()

	start := time.Now()
	if sp.duration > 0 {
		r.deadline = start.Add(sp.duration)
	}
	pubErrs := r.publishAll(ctx)
	want := r.totalSent() * uint64(sp.subs)
	last, lastAt := r.awaitDeliveries(ctx, want)
	elapsed := time.Since(start)
	if d := r.delivered(); d < want && d == last {
		elapsed = lastAt.Sub(start) // do not count the time spent waiting for what never came
	}
	stopProgress()
	r.closeClients()
	return r.result(elapsed, pubErrs), nil
}

// dialSubscribers connects the subscribers, each counting per publisher
// what it receives.
func (r *streamRun) dialSubscribers(ctx context.Context) error {
	sp := r.sp
	for i := range r.subs {
		s := &subscriber{counters: make([]seqCounter, sp.pubs), delivered: make([]atomic.Uint64, sp.pubs),
			reached: make([]atomic.Uint64, sp.pubs), floor: make([]atomic.Uint64, sp.pubs)}
		c, err := r.e.dial(ctx, sp.subChannel, fmt.Sprintf("ncbench-sub-%d", i),
			bus.ErrorHandler(func(err error) { s.err.CompareAndSwap(nil, &err) }),
			bus.OnDisconnect(func(error) { s.disconnects.Add(1) }),
			bus.OnReconnect(func() {
				for p := range r.sent {
					s.floor[p].Store(r.sent[p].Load())
				}
			}))
		if err != nil {
			return err
		}
		r.closers = append(r.closers, c)
		s.c = c
		if _, err := c.On(benchEvent, func(m bus.Message) {
			pub, seq, ok := parsePayload(m.Data, sp.size)
			if !ok || int(pub) >= sp.pubs {
				s.corrupt.Add(1)
				return
			}
			if sp.work > 0 {
				spin(sp.work)
			}
			s.counters[pub].see(seq)
			s.delivered[pub].Store(s.counters[pub].ok)
			s.reached[pub].Store(s.counters[pub].next)
			r.gates[pub].reached(s.counters[pub].next)
		}); err != nil {
			return err
		}
		r.subs[i] = s
	}
	return nil
}

// spin keeps the goroutine busy for d, as a listener doing work would.
func spin(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
	}
}

// dialPublishers connects the publishers.
func (r *streamRun) dialPublishers(ctx context.Context) error {
	for i := range r.pubs {
		c, err := r.e.dial(ctx, r.sp.pubChannel, fmt.Sprintf("ncbench-pub-%d", i))
		if err != nil {
			return err
		}
		r.closers = append(r.closers, c)
		r.pubs[i] = c
	}
	return nil
}

// closeClients closes every client dialed so far.
func (r *streamRun) closeClients() {
	for _, c := range r.closers {
		c.Close()
	}
	r.closers = nil
}

// slowest returns how far into publisher pub's sequence the slowest
// subscriber still there has got (events it lost included), and false
// if none is.
func (r *streamRun) slowest(pub int) (uint64, bool) {
	m, any := uint64(0), false
	for _, s := range r.subs {
		if s.gone() {
			continue
		}
		if d := max(s.reached[pub].Load(), s.floor[pub].Load()); !any || d < m {
			m, any = d, true
		}
	}
	return m, any
}

// delivered is what all subscribers together have delivered so far.
func (r *streamRun) delivered() (n uint64) {
	for _, s := range r.subs {
		n += s.total()
	}
	return n
}

// totalSent is what all publishers together have sent so far.
func (r *streamRun) totalSent() (n uint64) {
	for i := range r.sent {
		n += r.sent[i].Load()
	}
	return n
}

// publishAll runs the publishers until each is done, and returns their
// errors, by publisher. sp.stop, when set, stops them.
func (r *streamRun) publishAll(ctx context.Context) []error {
	var wg sync.WaitGroup
	pubErrs := make([]error, r.sp.pubs)
	for p := range r.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pubErrs[p] = r.publish(ctx, p)
		}()
	}
	if r.sp.stop != nil {
		go func() {
			select {
			case <-r.sp.stop:
			case <-ctx.Done():
			}
			r.stopping.Store(true)
		}()
	}
	wg.Wait()
	r.stopping.Store(true)
	return pubErrs
}

// awaitDeliveries waits for the subscribers to receive want events, or
// to stop making progress: all gone, ctx done, or nothing new for
// stallTimeout. It returns the count last seen to change and when.
func (r *streamRun) awaitDeliveries(ctx context.Context, want uint64) (last uint64, lastAt time.Time) {
	return awaitCount(ctx, r.delivered, want, func() bool { return allGone(r.subs) })
}

// result counts what arrived, once the clients are closed.
func (r *streamRun) result(elapsed time.Duration, pubErrs []error) Result {
	sp := r.sp
	res := Result{
		Name: sp.name, Channel: sp.pubChannel, SubChannel: sp.subChannel,
		Publishers: sp.pubs, Subscribers: sp.subs, Size: sp.size, Window: sp.window, Work: sp.work,
		Sent: r.totalSent(), Seconds: elapsed.Seconds(),
	}
	for _, s := range r.subs {
		for p := range s.counters {
			sc := s.counters[p]
			sc.finish(r.sent[p].Load())
			res.Delivered += sc.ok
			res.Lost += sc.lost
			res.Reordered += sc.reordered
			res.Doubled += sc.doubled
		}
		res.Corrupt += s.corrupt.Load()
		res.Disconnects += s.disconnects.Load()
		if err := s.err.Load(); err != nil && !errors.Is(*err, bus.ErrClosed) {
			res.Errors = append(res.Errors, (*err).Error())
		}
	}
	for _, err := range pubErrs {
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
	}
	res.rates()
	return res
}

func allGone(subs []*subscriber) bool {
	for _, s := range subs {
		if !s.gone() {
			return false
		}
	}
	return true
}

// publish emits the events of publisher p until the count is reached,
// the deadline passes or stopping is set, keeping at most sp.window
// events ahead of the slowest subscriber.
func (r *streamRun) publish(ctx context.Context, p int) error {
	c, pub, sp, g, sent, deadline := r.pubs[p], uint32(p), r.sp, &r.gates[p], &r.sent[p], r.deadline
	slowest := func() (uint64, bool) { return r.slowest(p) }
	payload, off := newPayload(sp.size)
	var data any = bus.RawData(payload) // boxed once: fillPayload changes it in place
	for seq := uint64(0); ; seq++ {
		if sp.duration == 0 && sp.stop == nil && seq >= sp.count {
			break
		}
		if seq%256 == 0 {
			if r.stopping.Load() || ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
				break
			}
		}
		if sp.window > 0 && seq%64 == 0 {
			if err := g.wait(pub, seq, sp.window, slowest); err != nil {
				return err
			}
		}
		fillPayload(payload[off:], pub, seq)
		if err := c.Emit(benchEvent, data); err != nil {
			return fmt.Errorf("publisher %d: %w", pub, err)
		}
		sent.Store(seq + 1)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Flush(fctx)
}

// gate is where a publisher waits for its subscribers to catch up: the
// publisher sets target, and each subscriber that has got to target in
// its sequence sends on wake.
type gate struct {
	target atomic.Uint64 // 0: nobody waits
	wake   chan struct{}
}

func newGates(n int) []gate {
	g := make([]gate, n)
	for i := range g {
		g[i].wake = make(chan struct{}, 1)
	}
	return g
}

// reached is called by a subscriber that has delivered n events of the
// gate's publisher.
func (g *gate) reached(n uint64) {
	if t := g.target.Load(); t != 0 && n >= t {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// wait returns once the slowest subscriber is less than window events
// behind seq. Once it is a full window behind, the publisher blocks until
// it has caught up half of it: blocking, not spinning, leaves the CPUs to
// the server and the subscribers.
func (g *gate) wait(pub uint32, seq, window uint64, slowest func() (uint64, bool)) error {
	low, any := slowest()
	if !any || seq-low < window {
		return nil
	}
	target := max(seq-window/2, 1)
	g.target.Store(target)
	defer g.target.Store(0)
	last, lastAt := low, time.Now()
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	for {
		low, any = slowest()
		if !any || low >= target {
			return nil
		}
		if low != last {
			last, lastAt = low, time.Now()
		} else if time.Since(lastAt) > stallTimeout {
			return fmt.Errorf("publisher %d: no subscriber progress for %v", pub, stallTimeout)
		}
		t.Reset(50 * time.Millisecond) // to notice subscribers that left
		select {
		case <-g.wake:
		case <-t.C:
		}
	}
}
