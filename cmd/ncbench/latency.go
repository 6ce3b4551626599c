package main

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/bus"
)

// pingTimeout is how long the pinger waits for a pong before it counts
// the ping as lost.
const pingTimeout = 2 * time.Second

// warmup pings are sent before the measured ones and not counted.
const warmup = 200

// runLatency measures round trips between two clients of one channel:
// the pinger emits "ping", the ponger's listener answers with "pong"
// carrying the same data, and the pinger's listener hears it. One ping is
// in flight at a time. The time includes everything an application sees:
// both clients' send and receive paths, the server twice, and the
// hand-off to listeners.
func (e *env) runLatency(ctx context.Context, name, channel string, pings, size int) (Result, error) {
	pp, err := e.dialPingPong(ctx, channel, size)
	if err != nil {
		return Result{}, err
	}
	defer pp.close()

	payload, off := newPayload(size)
	rtts := make([]time.Duration, 0, pings)
	var trips atomic.Uint64 // len(rtts), for the progress lines
	stopProgress := e.progress(name, func() (uint64, uint64) { return trips.Load(), trips.Load() })
	defer stopProgress()
	start := time.Now()
	for seq := uint64(0); seq < uint64(warmup+pings) && ctx.Err() == nil; seq++ {
		fillPayload(payload[off:], 0, seq)
		t0 := time.Now()
		if err := pp.pinger.Emit("ping", bus.RawData(payload)); err != nil {
			return Result{}, fmt.Errorf("ping: %w", err)
		}
		if rtt, ok := pp.awaitPong(ctx, seq, t0); ok && seq >= warmup {
			rtts = append(rtts, rtt)
			trips.Store(uint64(len(rtts)))
		}
	}
	elapsed := time.Since(start)
	stopProgress()
	r := Result{
		Name: name, Channel: channel, Publishers: 1, Subscribers: 1, Size: size,
		Sent: uint64(pings), Delivered: uint64(len(rtts)), Lost: pp.lost, Reordered: pp.reordered,
		Corrupt: pp.corrupt, Seconds: elapsed.Seconds(),
	}
	r.Latency = percentiles(rtts)
	return r, nil
}

// badPong stands on pongs for a pong whose data was damaged.
const badPong = ^uint64(0)

// pingPong is the pair of clients of a latency run and what the pinger
// has heard.
type pingPong struct {
	pinger, ponger *bus.Client
	pongs          chan uint64 // the sequence number of each pong heard, or badPong
	timer          *time.Timer // fires when the pong is pingTimeout late
	// Touched by the run's goroutine only.
	lost, reordered, corrupt uint64
}

// dialPingPong connects the pinger and the ponger on channel and sets up
// their listeners.
func (e *env) dialPingPong(ctx context.Context, channel string, size int) (_ *pingPong, err error) {
	pp := &pingPong{pongs: make(chan uint64, 16), timer: time.NewTimer(pingTimeout)}
	defer func() {
		if err != nil {
			pp.close()
		}
	}()
	if pp.pinger, err = e.dial(ctx, channel, "ncbench-ping"); err != nil {
		return nil, err
	}
	if pp.ponger, err = e.dial(ctx, channel, "ncbench-pong"); err != nil {
		return nil, err
	}
	ponger := pp.ponger
	if _, err := ponger.On("ping", func(m bus.Message) {
		ponger.Emit("pong", bus.RawData(m.Data))
	}); err != nil {
		return nil, err
	}
	if _, err := pp.pinger.On("pong", func(m bus.Message) {
		_, seq, ok := parsePayload(m.Data, size)
		if !ok {
			seq = badPong
		}
		select {
		case pp.pongs <- seq:
		default:
		}
	}); err != nil {
		return nil, err
	}
	return pp, nil
}

// close closes the clients dialed, the ponger first, and stops the
// timer.
func (pp *pingPong) close() {
	defer pp.timer.Stop()
	if pp.ponger != nil {
		pp.ponger.Close()
	}
	if pp.pinger != nil {
		pp.pinger.Close()
	}
}

// awaitPong waits up to pingTimeout for the pong to ping seq, sent at
// t0, and returns the round trip. It counts a pong to an earlier ping as reordered and waits
// on; a damaged pong as corrupt, and no pong before the timer fires as
// lost. It returns false for those and when ctx is done.
func (pp *pingPong) awaitPong(ctx context.Context, seq uint64, t0 time.Time) (time.Duration, bool) {
	pp.timer.Reset(pingTimeout)
	for {
		select {
		case got := <-pp.pongs:
			switch {
			case got == badPong:
				pp.corrupt++
			case got != seq:
				pp.reordered++ // a late answer to a ping already counted lost
				continue
			default:
				return time.Since(t0), true
			}
			return 0, false
		case <-pp.timer.C:
			pp.lost++
			return 0, false
		case <-ctx.Done():
			return 0, false
		}
	}
}

// Latency sums up round-trip times, in microseconds.
type Latency struct {
	Min  float64 `json:"min_us"`
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

func percentiles(d []time.Duration) *Latency {
	if len(d) == 0 {
		return nil
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q * float64(len(s)-1))
		return us(s[i])
	}
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return &Latency{
		Min: us(s[0]), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999),
		Max: us(s[len(s)-1]), Mean: us(sum / time.Duration(len(s))),
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
