package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// topOptions are the flags of top.
type topOptions struct {
	batch   bool
	count   int // snapshots to print in batch mode; 0: until interrupted
	delay   time.Duration
	sortKey string
	channel string // whose clients are shown
}

// seconds is a -d value: seconds as a number ("2", "0.5") or a Go
// duration ("1500ms").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want seconds (2, 0.5) or a duration (1500ms)")
	}
	*s.d = d
	return nil
}

// parseTopArgs reads top's flags and its channel. The flags of ncclient
// itself are taken after top too, for this command only: it returns the
// session to run on, s or a new one, which done closes (parseCommand).
func (s *session) parseTopArgs(c *command, args []string) (o topOptions, sub *session, done func(), err error) {
	o = topOptions{delay: time.Second, sortKey: "name"}
	fs, set := s.commandFlags(c)
	fs.BoolVar(&o.batch, "b", false, "batch mode: print a snapshot every delay, plain or with -json as JSON")
	fs.IntVar(&o.count, "n", 0, "batch mode: print count snapshots, then exit; 0 prints until interrupted")
	fs.Var(seconds{&o.delay}, "d", "time between snapshots, in seconds or as a duration")
	fs.StringVar(&o.sortKey, "sort", o.sortKey, "sort the tables by: "+strings.Join(sortKeyNames(), ", "))
	words, sub, done, err := s.parseCommand(fs, set, args)
	if err != nil {
		return o, nil, nil, err
	}
	switch {
	case len(words) > 1:
		err = usagef("top takes at most one channel; usage: %s", c.synopsis())
	case o.count < 0:
		err = usagef("top: -n %d: want 0 or more", o.count)
	case o.delay < 10*time.Millisecond:
		err = usagef("top: -d %v: want 10ms or more", o.delay)
	case sortKeyOf(o.sortKey) < 0:
		err = usagef("top: -sort %q: want one of %s", o.sortKey, strings.Join(sortKeyNames(), ", "))
	}
	if err != nil {
		done()
		return o, nil, nil, err
	}
	if len(words) == 1 {
		o.channel = words[0]
	}
	return o, sub, done, nil
}

// runTop runs `ncclient top`: the live view on a terminal, or with -b the
// batch mode.
func (s *session) runTop(ctx context.Context, c call, interactive bool) error {
	return s.top(ctx, c.cmd, c.args, interactive)
}

func (s *session) top(ctx context.Context, cmd *command, args []string, interactive bool) error {
	o, sub, done, err := s.parseTopArgs(cmd, args)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer done()
	if o.batch {
		return sub.topBatch(ctx, o)
	}
	out, ok := sub.stdout.(*os.File)
	if !ok || !term.IsTerminal(int(out.Fd())) || !term.IsTerminal(int(os.Stdin.Fd())) {
		return usagef("top: the live view needs a terminal; use top -b for snapshots on standard output")
	}
	if interactive {
		return usagef("top: the live view runs from the shell (ncclient top); at the prompt, use top -b")
	}
	return sub.topView(ctx, o, os.Stdin, out)
}

// The answers top reads, as far as it needs them: stats and
// showchannel (PROTOCOL.md § 12).

type statsAnswer struct {
	Uptime   float64                    `json:"uptime"`
	Channels map[string]channelCounters `json:"channels"`
	Network  map[string]any             `json:"network"`
	NATS     map[string]any             `json:"nats"` // nil without a NATS link
	Peers    map[string]peerCounters    `json:"peers"`
}

type channelCounters struct {
	Clients       int    `json:"clients"`
	EventsIn      uint64 `json:"events_in"`
	BytesIn       uint64 `json:"bytes_in"`
	FramesOut     uint64 `json:"frames_out"`
	BytesOut      uint64 `json:"bytes_out"`
	Dropped       uint64 `json:"dropped"`
	SlowConsumers uint64 `json:"slow_consumers"`
	Pending       int    `json:"pending"`
}

type peerCounters struct {
	Node      string `json:"node"`
	Host      string `json:"host"`
	Addr      string `json:"addr"` // "nats" for a peer heard over NATS
	Datagrams uint64 `json:"datagrams"`
	Bytes     uint64 `json:"bytes"`
	Lost      uint64 `json:"lost"`
	Repaired  uint64 `json:"repaired"`
}

type clientCounters struct {
	ID        string `json:"id"`
	Conn      uint64 `json:"conn"`
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	UID       int    `json:"uid"`
	EventsIn  uint64 `json:"events_in"`
	BytesIn   uint64 `json:"bytes_in"`
	FramesOut uint64 `json:"frames_out"`
	BytesOut  uint64 `json:"bytes_out"`
	Pending   int    `json:"pending"`
	Dropped   uint64 `json:"dropped"`
}

// sample is one read of the counters.
type sample struct {
	at      time.Time // when the answers came, on this side
	stats   statsAnswer
	channel string // whose clients: "" for none
	clients []clientCounters
	// clientsAt is when the answer to showchannel came.
	clientsAt time.Time
	// gone is the server's refusal of showchannel: the channel asked for
	// does not exist, or no longer (channel is "" then).
	gone error
}

// decodeAnswer reads an answer's map into v, through JSON.
func decodeAnswer(resp map[string]any, v any) error {
	b, err := json.Marshal(jsonable(resp))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// readSample asks for stats, and for the clients of channel unless it is
// "".
func (s *session) readSample(ctx context.Context, channel string) (*sample, error) {
	resp, err := s.request(ctx, "stats", nil)
	if err != nil {
		return nil, err
	}
	smp := &sample{at: time.Now(), channel: channel}
	if err := decodeAnswer(resp, &smp.stats); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if channel == "" {
		return smp, nil
	}
	resp, err = s.request(ctx, "showchannel", map[string]any{"channel": channel})
	var re *requestError
	if errors.As(err, &re) {
		// The channel went away in a reload: show the others.
		smp.channel, smp.gone = "", err
		return smp, nil
	}
	if err != nil {
		return nil, err
	}
	var ch struct {
		Clients []clientCounters `json:"clients"`
	}
	if err := decodeAnswer(resp, &ch); err != nil {
		return nil, fmt.Errorf("showchannel: %w", err)
	}
	smp.clients, smp.clientsAt = ch.Clients, time.Now()
	return smp, nil
}
