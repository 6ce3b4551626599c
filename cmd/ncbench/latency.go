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
	pinger, err := e.dial(ctx, channel, "ncbench-ping", nil)
	if err != nil {
		return Result{}, err
	}
	defer pinger.Close()
	ponger, err := e.dial(ctx, channel, "ncbench-pong", nil)
	if err != nil {
		return Result{}, err
	}
	defer ponger.Close()
	if _, err := ponger.On("ping", func(m bus.Message) {
		ponger.Emit("pong", bus.RawData(m.Data))
	}); err != nil {
		return Result{}, err
	}
	pongs := make(chan uint64, 16)
	corrupt := 0
	if _, err := pinger.On("pong", func(m bus.Message) {
		_, seq, ok := parsePayload(m.Data, size)
		if !ok {
			seq = ^uint64(0)
		}
		select {
		case pongs <- seq:
		default:
		}
	}); err != nil {
		return Result{}, err
	}

	payload, off := newPayload(size)
	rtts := make([]time.Duration, 0, pings)
	var lost, reordered uint64
	timer := time.NewTimer(pingTimeout)
	defer timer.Stop()
	var trips atomic.Uint64 // len(rtts), for the progress lines
	stopProgress := e.progress(name, func() (uint64, uint64) { return trips.Load(), trips.Load() })
	defer stopProgress()
	start := time.Now()
	for seq := uint64(0); seq < uint64(warmup+pings) && ctx.Err() == nil; seq++ {
		fillPayload(payload[off:], 0, seq)
		t0 := time.Now()
		if err := pinger.Emit("ping", bus.RawData(payload)); err != nil {
			return Result{}, fmt.Errorf("ping: %w", err)
		}
		timer.Reset(pingTimeout)
	wait:
		for {
			select {
			case got := <-pongs:
				switch {
				case got == ^uint64(0):
					corrupt++
				case got != seq:
					reordered++ // a late answer to a ping already counted lost
					continue
				default:
					if seq >= warmup {
						rtts = append(rtts, time.Since(t0))
						trips.Store(uint64(len(rtts)))
					}
				}
				break wait
			case <-timer.C:
				lost++
				break wait
			case <-ctx.Done():
				break wait
			}
		}
	}
	elapsed := time.Since(start)
	stopProgress()
	r := Result{
		Name: name, Channel: channel, Publishers: 1, Subscribers: 1, Size: size,
		Sent: uint64(pings), Delivered: uint64(len(rtts)), Lost: lost, Reordered: reordered,
		Corrupt: uint64(corrupt), Seconds: elapsed.Seconds(),
	}
	r.Latency = percentiles(rtts)
	return r, nil
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
