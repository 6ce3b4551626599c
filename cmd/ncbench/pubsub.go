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
	delivered []atomic.Uint64 // per publisher: counters[i].ok, for flow control and progress
	corrupt   atomic.Uint64
	err       atomic.Pointer[error]
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

// runStream runs publishers and subscribers and counts what arrives.
func (e *env) runStream(ctx context.Context, sp streamSpec) (Result, error) {
	sp.window = effectiveWindow(sp.window, sp.pubs, sp.size)
	subs := make([]*subscriber, sp.subs)
	gates := newGates(sp.pubs)
	var closers []*bus.Client
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for i := range subs {
		s := &subscriber{counters: make([]seqCounter, sp.pubs), delivered: make([]atomic.Uint64, sp.pubs)}
		c, err := e.dial(ctx, sp.subChannel, fmt.Sprintf("ncbench-sub-%d", i), func(err error) { s.err.CompareAndSwap(nil, &err) })
		if err != nil {
			return Result{}, err
		}
		closers = append(closers, c)
		s.c = c
		if _, err := c.On(benchEvent, func(m bus.Message) {
			pub, seq, ok := parsePayload(m.Data, sp.size)
			if !ok || int(pub) >= sp.pubs {
				s.corrupt.Add(1)
				return
			}
			s.counters[pub].see(seq)
			s.delivered[pub].Store(s.counters[pub].ok)
			gates[pub].reached(s.counters[pub].ok)
		}); err != nil {
			return Result{}, err
		}
		subs[i] = s
	}
	pubs := make([]*bus.Client, sp.pubs)
	for i := range pubs {
		c, err := e.dial(ctx, sp.pubChannel, fmt.Sprintf("ncbench-pub-%d", i), nil)
		if err != nil {
			return Result{}, err
		}
		closers = append(closers, c)
		pubs[i] = c
	}

	sent := make([]atomic.Uint64, sp.pubs)
	slowest := func(pub int) (uint64, bool) {
		m, any := uint64(0), false
		for _, s := range subs {
			if s.gone() {
				continue
			}
			if d := s.delivered[pub].Load(); !any || d < m {
				m, any = d, true
			}
		}
		return m, any
	}
	delivered := func() (n uint64) {
		for _, s := range subs {
			n += s.total()
		}
		return n
	}
	totalSent := func() (n uint64) {
		for i := range sent {
			n += sent[i].Load()
		}
		return n
	}
	stopProgress := e.progress(sp.name, func() (uint64, uint64) { return totalSent(), delivered() })
	defer stopProgress()

	var stopping atomic.Bool
	var deadline time.Time
	start := time.Now()
	if sp.duration > 0 {
		deadline = start.Add(sp.duration)
	}
	var wg sync.WaitGroup
	pubErrs := make([]error, sp.pubs)
	for p, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pubErrs[p] = publish(ctx, c, uint32(p), sp, &gates[p], &sent[p], &stopping, deadline, func() (uint64, bool) { return slowest(p) })
		}()
	}
	if sp.stop != nil {
		go func() {
			select {
			case <-sp.stop:
			case <-ctx.Done():
			}
			stopping.Store(true)
		}()
	}
	wg.Wait()
	stopping.Store(true)

	// Wait for the subscribers to receive what was sent, or to stop
	// making progress.
	want := totalSent() * uint64(sp.subs)
	last, lastAt := delivered(), time.Now()
	for {
		d := delivered()
		if d >= want || allGone(subs) || ctx.Err() != nil {
			break
		}
		if d != last {
			last, lastAt = d, time.Now()
		} else if time.Since(lastAt) > stallTimeout {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	if d := delivered(); d < want && d == last {
		elapsed = lastAt.Sub(start) // do not count the time spent waiting for what never came
	}
	stopProgress()
	for _, c := range closers {
		c.Close()
	}
	closers = nil

	r := Result{
		Name: sp.name, Channel: sp.pubChannel, SubChannel: sp.subChannel,
		Publishers: sp.pubs, Subscribers: sp.subs, Size: sp.size, Window: sp.window,
		Sent: totalSent(), Seconds: elapsed.Seconds(),
	}
	for _, s := range subs {
		for p := range s.counters {
			sc := s.counters[p]
			sc.finish(sent[p].Load())
			r.Delivered += sc.ok
			r.Lost += sc.lost
			r.Reordered += sc.reordered
		}
		r.Corrupt += s.corrupt.Load()
		if err := s.err.Load(); err != nil && !errors.Is(*err, bus.ErrClosed) {
			r.Errors = append(r.Errors, (*err).Error())
		}
	}
	for _, err := range pubErrs {
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
	}
	r.rates()
	return r, nil
}

func allGone(subs []*subscriber) bool {
	for _, s := range subs {
		if !s.gone() {
			return false
		}
	}
	return true
}

// publish emits events until the count is reached, the deadline passes
// or stopping is set, keeping at most sp.window events ahead of the
// slowest subscriber.
func publish(ctx context.Context, c *bus.Client, pub uint32, sp streamSpec, g *gate, sent *atomic.Uint64, stopping *atomic.Bool, deadline time.Time, slowest func() (uint64, bool)) error {
	payload, off := newPayload(sp.size)
	var data any = bus.RawData(payload) // boxed once: fillPayload changes it in place
	for seq := uint64(0); ; seq++ {
		if sp.duration == 0 && sp.stop == nil && seq >= sp.count {
			break
		}
		if seq%256 == 0 {
			if stopping.Load() || ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
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
// publisher sets target, and each subscriber that has delivered target
// events from it sends on wake.
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
