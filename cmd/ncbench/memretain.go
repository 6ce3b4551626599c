package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
)

// retainForMem is the retainbytes of the server the mem run fills the
// ring of: the default.
const retainForMem = 4 << 20

// Retention is what the mem run measured of a channel's ring of retained
// events: a publisher emits more than retainbytes to a subscriber that
// keeps up, and the server then holds at most retainbytes of them.
type Retention struct {
	RetainBytes int    `json:"retainbytes"`    // the server's retainbytes
	Emitted     uint64 `json:"emitted"`        // events emitted
	EmitBytes   uint64 `json:"emitted_bytes"`  // their payloads' bytes
	Received    uint64 `json:"received"`       // events the subscriber received
	Retained    int    `json:"retained"`       // the channel's stats afterwards
	Bytes       int    `json:"retained_bytes"` // what the retained events cost, which retainbytes bounds
	Evicted     uint64 `json:"retain_evicted"` // events that left the ring
	BaseRSS     uint64 `json:"base_rss"`       // the server with its publisher and subscriber, before the events
	RSS         uint64 `json:"rss"`            // the server after the events
	Growth      uint64 `json:"rss_growth"`     // RSS - BaseRSS, 0 if it shrank
}

func (r *Retention) writeText(w io.Writer) {
	fmt.Fprintf(w, "  retained events: %d, %s of retainbytes %s (%d of %d events emitted, %d evicted); RSS grew %s, %.2f× retainbytes\n",
		r.Retained, mib(uint64(r.Bytes)), mib(uint64(r.RetainBytes)), r.Retained, r.Emitted, r.Evicted,
		mib(r.Growth), float64(r.Growth)/float64(max(r.RetainBytes, 1)))
}

// retainConfig is memConfig with retainbytes set to retainForMem and the
// control channel on.
func retainConfig(dir string) (template, text string) {
	template = dir + "/{channel}.sock"
	return template, fmt.Sprintf(`{"socket": %q, "maxpending": %d, "retainbytes": %d, "startcontrol": true, "channels": {"A": {}}}`,
		template, maxPendingForMem, retainForMem)
}

// measureRetention starts a fresh server, has a publisher emit twice
// retainbytes of size-byte events to a subscriber, and reads the ring's
// counters from the control channel and the server's memory from /proc.
func measureRetention(ctx context.Context, bin string, size int) (*Retention, error) {
	r := &Retention{RetainBytes: retainForMem}
	p, err := startProcess(ctx, bin, retainConfig, []string{"A"}, "error", os.Stderr)
	if err != nil {
		return r, err
	}
	defer p.stop()
	opts := []bus.Option{bus.SocketTemplate(p.template), bus.Reconnect(false)}
	sub, err := bus.Dial(ctx, "A", append(opts, bus.Name("ncbench-retain-sub"))...)
	if err != nil {
		return r, err
	}
	defer sub.Close()
	var received atomic.Uint64
	if _, err := sub.On(benchEvent, func(bus.Message) { received.Add(1) }); err != nil {
		return r, err
	}
	pub, err := bus.Dial(ctx, "A", append(opts, bus.Name("ncbench-retain-pub"))...)
	if err != nil {
		return r, err
	}
	defer pub.Close()
	time.Sleep(300 * time.Millisecond)
	if r.BaseRSS, err = rss(p.pid()); err != nil {
		return r, err
	}
	payload, off := newPayload(size)
	for r.EmitBytes < 2*retainForMem && ctx.Err() == nil {
		fillPayload(payload[off:], 0, r.Emitted)
		if err := pub.Emit(benchEvent, bus.RawData(payload)); err != nil {
			return r, fmt.Errorf("emitting: %w", err)
		}
		r.Emitted++
		r.EmitBytes += uint64(size)
	}
	if err := waitReceived(ctx, pub, &received, r.Emitted); err != nil {
		r.Received = received.Load()
		return r, err
	}
	r.Received = received.Load()
	time.Sleep(300 * time.Millisecond)
	if r.RSS, err = rss(p.pid()); err != nil {
		return r, err
	}
	r.Growth = r.RSS - min(r.BaseRSS, r.RSS)
	return r, readRetainStats(ctx, p.template, "A", r)
}

// waitReceived flushes pub and waits until the subscriber has n events.
func waitReceived(ctx context.Context, pub *bus.Client, received *atomic.Uint64, n uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	for received.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the subscriber received %d of %d events", received.Load(), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// readRetainStats fills in the ring's counters of channel, from the
// server's stats.
func readRetainStats(ctx context.Context, template, channel string, r *Retention) error {
	st, err := readChannelStats[struct {
		Retained      int    `msgpack:"retained"`
		RetainedBytes int    `msgpack:"retained_bytes"`
		Evicted       uint64 `msgpack:"retain_evicted"`
	}](ctx, template, channel)
	r.Retained, r.Bytes, r.Evicted = st.Retained, st.RetainedBytes, st.Evicted
	return err
}

// readChannelStats asks the server's control channel for its stats and
// decodes those of channel into a T.
func readChannelStats[T any](ctx context.Context, template, channel string) (T, error) {
	var none T
	ctl, err := bus.Dial(ctx, router.ControlChannel, bus.SocketTemplate(template), bus.Name("ncbench-stats"), bus.Reconnect(false))
	if err != nil {
		return none, fmt.Errorf("control channel: %w", err)
	}
	defer ctl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	reply, err := ctl.Request(ctx, router.ControlPrefix+"stats", nil)
	if err != nil {
		return none, fmt.Errorf("stats: %w", err)
	}
	var stats struct {
		Channels map[string]T `msgpack:"channels"`
	}
	if err := wire.DecodeData(reply.Data, &stats); err != nil {
		return none, fmt.Errorf("stats: %w", err)
	}
	st, ok := stats.Channels[channel]
	if !ok {
		return none, fmt.Errorf("stats: no channel %s", channel)
	}
	return st, nil
}

// rssBound is how many times retainbytes the server's memory may grow
// by while its ring is full: the Go heap may hold twice its live data
// between collections, and the frames in flight and the pools of frame
// buffers hold some more. A ring that kept what it was sent, six times
// retainbytes in frames, would be past it.
const rssBound = 4

// check reports what the ring's figures break of their bounds.
func (r *Retention) check() []string {
	var errs []string
	if r.Retained == 0 || r.Bytes == 0 {
		errs = append(errs, fmt.Sprintf("the server retained nothing (%d events, %d bytes) of %d events", r.Retained, r.Bytes, r.Emitted))
	}
	if r.Bytes > r.RetainBytes {
		errs = append(errs, fmt.Sprintf("retained_bytes %d is over retainbytes %d", r.Bytes, r.RetainBytes))
	}
	if r.Growth > rssBound*uint64(r.RetainBytes) {
		errs = append(errs, fmt.Sprintf("the server grew by %d bytes with its ring full, over %d times retainbytes %d", r.Growth, rssBound, r.RetainBytes))
	}
	return errs
}
