package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/mcap"
)

// channelMap is -map's value: A=B pairs, repeatable.
type channelMap map[string]string

func (m channelMap) String() string {
	var pairs []string
	for a, b := range m {
		pairs = append(pairs, a+"="+b)
	}
	return strings.Join(pairs, ",")
}

func (m channelMap) Set(v string) error {
	a, b, ok := strings.Cut(v, "=")
	if !ok || a == "" || b == "" {
		return fmt.Errorf("%q is not A=B", v)
	}
	m[a] = b
	return nil
}

// replayOptions are replay's flags and argument.
type replayOptions struct {
	rate    float64 // 0 for as fast as possible
	loop    bool
	mapping channelMap
	event   *regexp.Regexp
	file    string
}

func (s *session) parseReplay(c call) (replayOptions, *session, func(), error) {
	o := replayOptions{mapping: channelMap{}}
	fs, set := s.commandFlags(c.cmd)
	rate := fs.String("rate", "1", "speed: 1 keeps the recorded spacing, 2 halves it, max sends as fast as the server takes")
	fs.BoolVar(&o.loop, "loop", false, "start again at the end, until Ctrl-C")
	fs.Var(o.mapping, "map", "A=B replays channel A's events onto channel B; repeat for more channels")
	event := fs.String("event", ".*", "replay only the events whose name fully matches this regular expression")
	rest, sub, done, err := s.parseCommand(fs, set, c.args)
	if err != nil {
		return o, nil, nil, err
	}
	fail := func(format string, a ...any) (replayOptions, *session, func(), error) {
		done()
		return o, nil, nil, usagef(format, a...)
	}
	if len(rest) != 1 {
		return fail("replay: name one MCAP file; usage: %s", c.cmd.synopsis())
	}
	o.file = rest[0]
	if *rate != "max" {
		o.rate, err = strconv.ParseFloat(*rate, 64)
		if err != nil || o.rate <= 0 {
			return fail("replay: -rate %q is neither a positive number nor max", *rate)
		}
	}
	if o.event, err = regexp.Compile("^(?:" + *event + ")$"); err != nil {
		return fail("replay: -event: %v", err)
	}
	return o, sub, done, nil
}

// target is where the messages of one MCAP channel go: a client on the
// (mapped) channel, and the event name. Nil for a channel not replayed.
type target struct {
	client *bus.Client
	event  string
}

// replay emits the events of an MCAP file onto their channels, or mapped
// ones, spaced as they were recorded. The file is checked whole first:
// nothing is emitted from a damaged file.
func (s *session) replay(ctx context.Context, c call, interactive bool) error {
	o, sub, done, err := s.parseReplay(c)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer done()
	f, err := os.Open(o.file)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	file, err := mcap.Open(f, info.Size())
	if err != nil {
		return fmt.Errorf("replay: %s: %w", o.file, err)
	}
	targets, clients, err := sub.replayTargets(ctx, file, o)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	return s.runReplay(ctx, file, targets, clients, o, interactive)
}

// replayTargets dials the channels the file's events go to.
func (s *session) replayTargets(ctx context.Context, file *mcap.File, o replayOptions) (map[uint16]target, map[string]*bus.Client, error) {
	targets := map[uint16]target{}
	clients := map[string]*bus.Client{}
	for id, ch := range file.Channels {
		channel, event := ch.Metadata["channel"], ch.Metadata["event"]
		if channel == "" || event == "" {
			channel, event, _ = strings.Cut(ch.Topic, "/")
		}
		if ch.MessageEncoding != messageEncoding || channel == "" || event == "" || !o.event.MatchString(event) {
			continue
		}
		if to, ok := o.mapping[channel]; ok {
			channel = to
		}
		c := clients[channel]
		if c == nil {
			var err error
			if c, err = s.dial(ctx, channel); err != nil {
				return nil, clients, fmt.Errorf("replay: %w", err)
			}
			clients[channel] = c
		}
		targets[id] = target{client: c, event: event}
	}
	return targets, clients, nil
}

// runReplay emits the file's messages, once or, with -loop, until
// Ctrl-C, and waits until the server has taken them.
func (s *session) runReplay(ctx context.Context, file *mcap.File, targets map[uint16]target, clients map[string]*bus.Client, o replayOptions, interactive bool) error {
	var total int64
	if st := file.Statistics; st != nil {
		for id, n := range st.ChannelCounts {
			if targets[id].client != nil {
				total += int64(n)
			}
		}
	}
	stop := "Ctrl-C stops"
	if interactive {
		stop = "Ctrl-C returns to the prompt"
	}
	fmt.Fprintf(s.stderr, "replaying %s; %s\n", o.file, stop)
	var cnt counter
	start := time.Now()
	p := startProgress(s.stderr, func(d time.Duration) string { return replayLine(&cnt, total, d) })
	var err error
	for pass := 0; err == nil && (pass == 0 || o.loop); pass++ {
		before, _ := cnt.get()
		if err = replayOnce(ctx, file, targets, o.rate, &cnt); err == nil {
			err = ctx.Err()
		}
		if n, _ := cnt.get(); err == nil && n == before {
			if o.loop {
				fmt.Fprintf(s.stderr, "replay: %s holds nothing to replay: not looping\n", o.file)
			}
			break
		}
	}
	for _, c := range clients {
		fctx, cancel := context.WithTimeout(context.Background(), s.set.timeout)
		ferr := c.Flush(fctx)
		cancel()
		if ferr != nil && err == nil {
			err = fmt.Errorf("replay: %w", ferr)
		}
	}
	p.end()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	n, b := cnt.get()
	fmt.Fprintf(s.stderr, "replayed %d events (%s) in %s\n", n, humanBytes(b), time.Since(start).Round(time.Millisecond))
	return nil
}

// replayLine is the progress bar: how much of one pass is done.
func replayLine(cnt *counter, total int64, d time.Duration) string {
	n, b := cnt.get()
	bar := ""
	if total > 0 {
		const width = 30
		done := n
		if n > total {
			done = (n-1)%total + 1 // a later pass, with -loop
		}
		fill := int(done * width / total)
		bar = fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done*100/total)
	}
	return fmt.Sprintf("%sreplayed %d events, %s, %.0f events/s, %s", bar, n, humanBytes(b), float64(n)/max(d.Seconds(), 1e-3), clock(d))
}

// replayOnce emits every message of the file once. Each waits until its
// log time, measured from the first message's, divided by rate, has
// passed since the pass began; with rate 0 nothing waits.
func replayOnce(ctx context.Context, file *mcap.File, targets map[uint16]target, rate float64, cnt *counter) error {
	var first uint64
	var began time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	return file.Messages(func(ch *mcap.Channel, m *mcap.Message) error {
		t := targets[m.ChannelID]
		if t.client == nil {
			return nil
		}
		if began.IsZero() {
			first, began = m.LogTime, time.Now()
		}
		if rate > 0 && m.LogTime > first {
			wait := time.Until(began.Add(time.Duration(float64(m.LogTime-first) / rate)))
			if wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := t.client.Emit(t.event, bus.RawData(m.Data)); err != nil {
			return fmt.Errorf("replay: emitting %s on %s: %w", t.event, t.client.Channel(), err)
		}
		cnt.add(1, int64(len(m.Data)))
		return nil
	})
}
