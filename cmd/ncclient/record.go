package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/mcap"
)

// messageEncoding is the MCAP message encoding of a recorded event: its
// data, one msgpack value, byte for byte as it came.
const messageEncoding = "msgpack"

// topicKey picks the MCAP channel of an event. Each MCAP channel carries
// what is the same for all its messages in its metadata: the channel the
// event was recorded on and the one it was emitted on (they differ for
// propagated events), its name, and the node and client it came from.
type topicKey struct {
	channel, emittedOn, event string
	origin, sender            uuid.UUID
}

// topicState is an MCAP channel's id and the sequence number of its last
// message.
type topicState struct {
	id  uint16
	seq uint32
}

// recorder writes the events its listeners hand it to an MCAP file. Its
// listeners run on one goroutine per channel; mu keeps their writes
// whole. Memory is the MCAP channels seen, never the events.
type recorder struct {
	mu      sync.Mutex
	w       *mcap.Writer
	topics  map[topicKey]*topicState
	limit   int64 // stop after this many events; 0 for no limit
	n       int64
	closed  bool  // no more events are written
	err     error // the first write error
	full    chan struct{}
	counter counter
	base    time.Time // log times are base plus the monotonic time since
}

func (r *recorder) listener(channel string) func(bus.Message) {
	return func(m bus.Message) {
		// One read of the monotonic clock, which is cheaper than the
		// wall clock and the monotonic one that time.Now reads.
		now := uint64(r.base.UnixNano() + int64(time.Since(r.base)))
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return
		}
		if err := r.write(channel, &m, now); err != nil {
			r.err, r.closed = err, true
			close(r.full)
			return
		}
		r.n++
		r.counter.add(1, int64(len(m.Data)))
		if r.limit > 0 && r.n >= r.limit {
			r.closed = true
			close(r.full)
		}
	}
}

// flushInterval is how often a recording's buffer is written out, so
// that a recorder killed without a chance to finish loses little.
const flushInterval = time.Second

// flush writes out what is buffered.
func (r *recorder) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if err := r.w.Flush(); err != nil {
		r.err, r.closed = err, true
		close(r.full)
	}
}

// write writes one event; r.mu is held.
func (r *recorder) write(channel string, m *bus.Message, now uint64) error {
	k := topicKey{channel: channel, emittedOn: m.Channel, event: m.Event, origin: m.Origin, sender: m.Sender}
	t := r.topics[k]
	if t == nil {
		meta := map[string]string{
			"channel":    channel,
			"emitted_on": m.Channel,
			"event":      m.Event,
			"origin":     m.Origin.String(),
			"sender":     m.Sender.String(),
		}
		id, err := r.w.AddChannel(channel+"/"+m.Event, messageEncoding, meta)
		if err != nil {
			return err
		}
		t = &topicState{id: id}
		r.topics[k] = t
	}
	t.seq++
	// Events carry no emit time: the publish time is the receive time.
	return r.w.WriteMessage(&mcap.Message{ChannelID: t.id, Sequence: t.seq, LogTime: now, PublishTime: now, Data: m.Data})
}

// recordOptions are record's flags and arguments.
type recordOptions struct {
	out      string
	pattern  string
	duration time.Duration
	count    int64
	compress string
	channels []string
}

// chunkSize is how many bytes of events a compressed recording gathers
// into one chunk.
const chunkSize = 1 << 20

func (s *session) parseRecord(c call) (recordOptions, *session, func(), error) {
	var o recordOptions
	fs, set := s.commandFlags(c.cmd)
	fs.StringVar(&o.out, "o", "", "the MCAP file to write; - for standard output (default recording-<time>.mcap)")
	fs.StringVar(&o.pattern, "event", ".*", "record only the events whose name fully matches this regular expression")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	fs.Int64Var(&o.count, "count", 0, "stop after this many events (0: no limit)")
	fs.StringVar(&o.compress, "compress", "none", "none writes events one by one; lz4 writes them in lz4-compressed, indexed chunks of 1 MiB")
	rest, sub, done, err := s.parseCommand(fs, set, c.args)
	if err != nil {
		return o, nil, nil, err
	}
	if len(rest) == 0 {
		done()
		return o, nil, nil, usagef("record: name one or more channels; usage: %s", c.cmd.synopsis())
	}
	if o.duration < 0 || o.count < 0 {
		done()
		return o, nil, nil, usagef("record: -duration and -count cannot be negative")
	}
	if o.compress != "none" && o.compress != mcap.CompressLZ4 {
		done()
		return o, nil, nil, usagef("record: -compress %q is neither none nor lz4", o.compress)
	}
	if o.out == "" {
		o.out = "recording-" + time.Now().Format("20060102-150405") + ".mcap"
	}
	o.channels = rest
	return o, sub, done, nil
}

// record records channels' events to an MCAP file until Ctrl-C (or
// SIGTERM), -duration, -count, or a connection's end, and then finishes
// the file: summary, footer and all.
func (s *session) record(ctx context.Context, call call, interactive bool) error {
	o, sub, done, err := s.parseRecord(call)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer done()
	clients := make([]*bus.Client, 0, len(o.channels))
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, ch := range o.channels {
		c, err := sub.dial(ctx, ch)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	// The pattern is checked before the file is opened, which empties
	// an existing one: On, below, fails for nothing else.
	if err := bus.CheckPattern(o.pattern); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	out, closeOut, created, err := createOutput(o.out, s.stdout)
	if err != nil {
		return err
	}
	// abandon removes the file of a recording that could not start, if
	// the recording made it: never one that was there before (run as
	// root, record -o /dev/null removed the device).
	abandon := func() {
		closeOut()
		if created {
			os.Remove(o.out)
		}
	}
	var opts []mcap.Option
	if o.compress == mcap.CompressLZ4 {
		opts = append(opts, mcap.Chunked(mcap.CompressLZ4, chunkSize))
	}
	w, err := mcap.NewWriter(out, "ncclient", opts...)
	if err != nil {
		abandon()
		return fmt.Errorf("record: %w", err)
	}
	r := &recorder{w: w, topics: map[topicKey]*topicState{}, limit: o.count, full: make(chan struct{}), base: time.Now()}
	for i, c := range clients {
		if _, err := c.On(o.pattern, r.listener(o.channels[i])); err != nil {
			abandon()
			return fmt.Errorf("record: %w", err)
		}
	}
	return s.runRecording(ctx, o, r, clients, closeOut, interactive)
}

// runRecording waits for the recording's end, then closes the clients
// and finishes the file.
func (s *session) runRecording(ctx context.Context, o recordOptions, r *recorder, clients []*bus.Client, closeOut func() error, interactive bool) error {
	stop := "Ctrl-C stops"
	if interactive {
		stop = "Ctrl-C returns to the prompt"
	}
	fmt.Fprintf(s.stderr, "recording %s (events %s) to %s; %s\n", strings.Join(o.channels, ", "), o.pattern, o.out, stop)
	start := time.Now()
	p := startProgress(s.stderr, func(d time.Duration) string {
		n, b := r.counter.get()
		return fmt.Sprintf("recorded %d events, %s, %.0f events/s, %s", n, humanBytes(b), float64(n)/max(d.Seconds(), 1e-3), clock(d))
	})
	var timeout <-chan time.Time
	if o.duration > 0 {
		t := time.NewTimer(o.duration)
		defer t.Stop()
		timeout = t.C
	}
	lost := make(chan error, len(clients))
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			select {
			case <-c.Done():
				lost <- fmt.Errorf("connection to channel %s ended: %w", o.channels[i], c.Err())
			case <-quit:
			}
		})
	}
	flush := time.NewTicker(flushInterval)
	defer flush.Stop()
	var err error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-timeout:
			break wait
		case <-r.full:
			break wait
		case err = <-lost:
			break wait
		case <-flush.C:
			r.flush()
		}
	}
	close(quit)
	wg.Wait()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, c := range clients {
		c.Close() // waits for the listeners to return
	}
	p.end()
	err = errors.Join(err, r.err, r.w.Close(), closeOut())
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	fmt.Fprintf(s.stderr, "recorded %d events (%s) in %s to %s\n", r.n, humanBytes(r.w.Size()), time.Since(start).Round(time.Millisecond), o.out)
	return nil
}

// createOutput opens the file a recording goes to, or standard output
// for "-". created says whether it made the file: one that existed (an
// older recording, /dev/null, a FIFO) is truncated, and never removed.
func createOutput(path string, stdout io.Writer) (w io.Writer, closeOut func() error, created bool, err error) {
	if path == "-" {
		return stdout, func() error { return nil }, false, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, fs.ErrExist) {
		f, err = os.Create(path) // an older recording, /dev/null, a FIFO
	} else {
		created = err == nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("record: %w", err)
	}
	return f, f.Close, created, nil
}
