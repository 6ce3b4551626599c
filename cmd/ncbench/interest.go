package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/bus"
)

// The interest run: -names subscribers on channel -to, each listening
// to an event name of its own, and one publisher that emits -count
// events cycling through the names, so that each event is for exactly
// one subscriber. It runs twice in one invocation:
//
//   - "interest": the subscribers on default options, which declare
//     what they listen to, so that the server forwards each of them
//     only its own events;
//   - "interest-all": the same with bus.ReceiveAll, so that the server
//     writes every event to every subscriber and each drops what it
//     does not listen to, as every client did before servers filtered.
//
// Both count deliveries to the listeners, and the server's bytes
// written per event emitted, from the channel's stats.

// interestSub counts what one subscriber of the interest run receives:
// of the publisher's sequence, the events numbered k, k+names, ...
type interestSub struct {
	counter   seqCounter // by seq/names; the dispatcher's, read after Close
	delivered atomic.Uint64
	corrupt   atomic.Uint64
	foreign   atomic.Uint64 // events of another subscriber's name
	err       atomic.Pointer[error]
	discon    atomic.Uint64
}

// interestName is the event name of subscriber k.
func interestName(k int) string { return fmt.Sprintf("bench-%d", k) }

// runInterest runs both passes of the interest run.
func (e *env) runInterest(ctx context.Context) ([]Result, error) {
	var out []Result
	for _, all := range []bool{false, true} {
		r, err := e.interestPass(ctx, all)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// interestPass runs the interest run once: with all, every subscriber
// receives every event.
func (e *env) interestPass(ctx context.Context, all bool) (Result, error) {
	f, names, channel := e.f, e.f.names, e.f.to // -to: a channel that propagates nowhere
	res := Result{Name: "interest", Channel: channel, SubChannel: channel, Publishers: 1, Subscribers: names,
		Size: f.size, Names: names}
	if all {
		res.Name = "interest-all"
	}
	subs, closers, err := e.dialInterestSubs(ctx, channel, res.Name, all)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	pub, err := e.dial(ctx, channel, "ncbench-"+res.Name+"-pub")
	if err != nil {
		return res, err
	}
	closers = append(closers, pub)
	before, err := readChannelCounters(ctx, e.template, channel)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	var sent atomic.Uint64
	delivered := func() (n uint64) {
		for _, s := range subs {
			n += s.delivered.Load()
		}
		return n
	}
	stopProgress := e.progress(res.Name, func() (uint64, uint64) { return sent.Load(), delivered() })
	defer stopProgress()

	start := time.Now()
	pubErr := publishCycling(ctx, f, pub, names, &sent)
	last, lastAt := awaitCount(ctx, delivered, sent.Load(), nil)
	elapsed := time.Since(start)
	if d := delivered(); d < sent.Load() && d == last {
		elapsed = lastAt.Sub(start)
	}
	stopProgress()
	if after, err := readChannelCounters(ctx, e.template, channel); err == nil && before != nil {
		res.setServerBytes(before, after)
	}
	for _, c := range closers {
		c.Close()
	}
	closers = nil
	res.Sent, res.Seconds = sent.Load(), elapsed.Seconds()
	for k, s := range subs {
		s.counter.finish((res.Sent + uint64(names-1-k)) / uint64(names))
		res.Delivered += s.counter.ok
		res.Lost += s.counter.lost
		res.Reordered += s.counter.reordered
		res.Doubled += s.counter.doubled
		res.Corrupt += s.corrupt.Load() + s.foreign.Load()
		res.Disconnects += s.discon.Load()
		if err := s.err.Load(); err != nil && !errors.Is(*err, bus.ErrClosed) {
			res.Errors = append(res.Errors, (*err).Error())
		}
	}
	if pubErr != nil {
		res.Errors = append(res.Errors, pubErr.Error())
	}
	res.rates()
	return res, nil
}

// dialInterestSubs connects the interest run's subscribers, subscriber
// k listening to interestName(k); with all, on bus.ReceiveAll. It
// returns the clients dialed, to close, even with an error.
func (e *env) dialInterestSubs(ctx context.Context, channel, run string, all bool) ([]*interestSub, []*bus.Client, error) {
	f := e.f
	subs := make([]*interestSub, f.names)
	var closers []*bus.Client
	for k := range subs {
		s := &interestSub{}
		opts := []bus.Option{bus.ErrorHandler(func(err error) { s.err.CompareAndSwap(nil, &err) }),
			bus.OnDisconnect(func(error) { s.discon.Add(1) })}
		if all {
			opts = append(opts, bus.ReceiveAll())
		}
		c, err := e.dial(ctx, channel, fmt.Sprintf("ncbench-%s-%d", run, k), opts...)
		if err != nil {
			return nil, closers, err
		}
		closers = append(closers, c)
		if _, err := c.On(interestName(k), func(m bus.Message) { s.see(m.Data, f.size, k, f.names) }); err != nil {
			return nil, closers, err
		}
		subs[k] = s
	}
	return subs, closers, nil
}

// see counts one event that subscriber k's listener heard.
func (s *interestSub) see(data []byte, size, k, names int) {
	_, seq, ok := parsePayload(data, size)
	switch {
	case !ok:
		s.corrupt.Add(1)
	case int(seq%uint64(names)) != k:
		s.foreign.Add(1)
	default:
		s.counter.see(seq / uint64(names))
		s.delivered.Store(s.counter.ok)
	}
}

// publishCycling emits f.count events (or for f.duration), event seq
// named for subscriber seq mod names, and flushes.
func publishCycling(ctx context.Context, f *flags, c *bus.Client, names int, sent *atomic.Uint64) error {
	events := make([]string, names)
	for k := range events {
		events[k] = interestName(k)
	}
	payload, off := newPayload(f.size)
	var data any = bus.RawData(payload)
	var deadline time.Time
	if f.duration > 0 {
		deadline = time.Now().Add(f.duration)
	}
	for seq := uint64(0); f.duration > 0 || seq < f.count; seq++ {
		if seq%256 == 0 && (ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline)) {
			break
		}
		fillPayload(payload[off:], 0, seq)
		if err := c.Emit(events[seq%uint64(names)], data); err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		sent.Store(seq + 1)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Flush(fctx)
}

// awaitCount waits for count() to reach want, or to stop changing for
// stallTimeout, or for gone() (nil: never) or ctx to end the wait, and
// returns the count last seen to change and when.
func awaitCount(ctx context.Context, count func() uint64, want uint64, gone func() bool) (last uint64, lastAt time.Time) {
	last, lastAt = count(), time.Now()
	for {
		d := count()
		if d >= want || ctx.Err() != nil || gone != nil && gone() {
			return last, lastAt
		}
		if d != last {
			last, lastAt = d, time.Now()
		} else if time.Since(lastAt) > stallTimeout {
			return last, lastAt
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// channelCounters are the channel stats the interest run reads.
type channelCounters struct {
	EventsIn uint64 `msgpack:"events_in"`
	BytesOut uint64 `msgpack:"bytes_out"`
	Filtered uint64 `msgpack:"filtered"`
}

// readChannelCounters asks the server's control channel for channel's
// counters.
func readChannelCounters(ctx context.Context, template, channel string) (*channelCounters, error) {
	st, err := readChannelStats[channelCounters](ctx, template, channel)
	return &st, err
}

// setServerBytes fills in what the server wrote per event emitted, and
// what it filtered out, between two readings of the channel's counters.
func (r *Result) setServerBytes(before, after *channelCounters) {
	if in := after.EventsIn - before.EventsIn; in > 0 {
		r.ServerBytesPerEvent = float64(after.BytesOut-before.BytesOut) / float64(in)
	}
	r.Filtered = after.Filtered - before.Filtered
}
