package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
)

// parseData reads emit's JSON text into a value that msgpack encodes as
// a Go program would expect: objects become maps, whole numbers
// integers, other numbers float64. Empty text is nil.
func parseData(text string) (any, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("data is not JSON: %v (a string needs double quotes: %q)", err, "text")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data is not one JSON value: more follows it in %s", text)
	}
	return numbers(v)
}

// numbers replaces json.Number values by int64, uint64 or float64. A
// number past float64's range is an error, not an infinity.
func numbers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("data is not JSON that can be sent: the number %s is out of range", wire.Clip(string(x), 40))
		}
		return f, nil
	case map[string]any:
		for k, e := range x {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	case []any:
		for i, e := range x {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	}
	return v, nil
}

// emit sends one event on a channel and waits until it is written.
func (s *session) emit(ctx context.Context, channel, event, text string) error {
	data, err := parseData(text)
	if err != nil {
		return fmt.Errorf("emit: %w", err)
	}
	c, err := s.dial(ctx, channel)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Emit(event, data); err != nil {
		return fmt.Errorf("emit: %w", err)
	}
	fctx, cancel := context.WithTimeout(ctx, s.set.timeout)
	defer cancel()
	if err := c.Flush(fctx); err != nil {
		if cerr := c.Err(); cerr != nil {
			err = cerr
		}
		return fmt.Errorf("emit: %w", err)
	}
	return nil
}

// The backoff of listen's reconnecting: a restarted server is heard
// again within about a second.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = time.Second
)

// listen prints the channel's events whose names match pattern (every
// event when it is empty), one line each, until ctx ends (Ctrl-C) or the
// server refuses the client for good. When the connection breaks (the
// server restarts, say) it says so on stderr and reconnects, and says
// so again once it listens again.
func (s *session) listen(ctx context.Context, channel, pattern string, interactive bool) error {
	if pattern == "" {
		pattern = ".*"
	}
	var mu sync.Mutex // the listener and the messages share stdout and stderr
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(s.stderr, format, args...)
	}
	c, err := s.dial(ctx, channel, bus.Reconnect(true), bus.ReconnectBackoff(listenBackoffMin, listenBackoffMax),
		bus.OnDisconnect(func(err error) { say("server gone; reconnecting… (%v)\n", err) }),
		bus.OnReconnect(func() { say("listening again on %s for %s\n", channel, pattern) }))
	if err != nil {
		return err
	}
	defer c.Close()
	var buf bytes.Buffer
	if _, err := c.On(pattern, func(m bus.Message) {
		line := eventLine(m, time.Now(), s.set.json)
		mu.Lock()
		defer mu.Unlock()
		buf.Reset()
		buf.WriteString(line)
		buf.WriteByte('\n')
		s.stdout.Write(buf.Bytes())
	}); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Said once the listener is in place, so that whoever waits for it
	// knows that events emitted from now on are printed.
	stop := "Ctrl-C stops"
	if interactive {
		stop = "Ctrl-C returns to the prompt"
	}
	say("listening on %s for %s; %s\n", channel, pattern, stop)
	select {
	case <-ctx.Done():
		return nil
	case <-c.Done():
		// Only a refusal for good ends it: reconnecting is on.
		return fmt.Errorf("listen: connection to channel %s ended: %w", channel, c.Err())
	}
}

// help lists the commands, or explains one.
func (s *session) help(name string) error {
	var b strings.Builder
	if name == "" {
		b.WriteString("commands (also written as calls: showchannel(\"A\")):\n")
		for _, c := range commands {
			if syn := c.synopsis(); len(syn) > 30 {
				// Too long for the column: the summary goes below, as
				// in ncclient -h.
				fmt.Fprintf(&b, "  %s\n  %-30s %s\n", syn, "", c.summary)
			} else {
				fmt.Fprintf(&b, "  %-30s %s\n", syn, c.summary)
			}
		}
		b.WriteString("Tab completes commands and channel names; Up and Down walk the history.\n")
	} else {
		c := lookup(strings.ToLower(name))
		if c == nil {
			return unknownCommand(name)
		}
		fmt.Fprintf(&b, "usage:   %s\n%s\nexample: %s\n", c.synopsis(), c.summary, c.example)
		if c.control {
			fmt.Fprintf(&b, "sends %s%s on the control channel\n", requestPrefix, c.name)
		}
	}
	_, err := io.WriteString(s.stdout, b.String())
	return err
}
