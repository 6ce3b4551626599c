package channel

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"

	"github.com/netcluster/netcluster/internal/wire"
)

// Interest.
//
// A client of protocol version 4 may declare the event names it listens
// to (PROTOCOL.md § 5.4): in its Hello, and again in an Interest frame
// whenever its listeners change. The server then forwards it an event
// only when the event is addressed to it (To is its id: a request to it,
// a reply) or the event's name matches one of its patterns. A client that
// declares nothing, or All, and every client of an older version or of
// the JSON text protocol, gets every event of its channel.
//
// A declaration is compiled once, when it arrives, into a filter, which
// replaces the client's with one atomic store under the connection's
// lock; the Applied frame that answers it is queued after that. The
// fan-out decides by the filter it loads, without a lock, and a push
// that finds, under the lock, that the filter has been swapped since
// decides again (Conn.refiltered): so every event queued behind an
// Applied went through that declaration or a later one. Each filter caches
// its decision per event name (nameCache): on the fan-out path, deciding
// for one client costs an atomic load and one map lookup, and allocates
// nothing.

// filter is one declaration of a client, compiled. It is never changed
// once made, but for its cache.
type filter struct {
	patterns []string         // as declared, for showclient
	res      []*regexp.Regexp // patterns[i] anchored and compiled
	cache    nameCache[bool]
}

// compileInterest compiles a declaration's patterns, anchored at both
// ends as bus.Client.On takes them. The regexps of prev (the client's
// filter so far, or nil) are reused for the patterns it has too, since
// a client declares its whole set each time. The error names the
// pattern that does not compile.
func compileInterest(patterns []string, prev *filter) (*filter, error) {
	var known map[string]*regexp.Regexp
	if prev != nil {
		known = make(map[string]*regexp.Regexp, len(prev.patterns))
		for i, p := range prev.patterns {
			known[p] = prev.res[i]
		}
	}
	f := &filter{patterns: patterns, res: make([]*regexp.Regexp, len(patterns))}
	for i, p := range patterns {
		if re := known[p]; re != nil {
			f.res[i] = re
			continue
		}
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return nil, fmt.Errorf("interest: pattern %d %q does not compile: %v", i, wire.Clip(p, 128), err)
		}
		f.res[i] = re
	}
	return f, nil
}

// match runs the patterns on an event name.
func (f *filter) match(name []byte) bool {
	for _, re := range f.res {
		if re.Match(name) {
			return true
		}
	}
	return false
}

// wants reports whether an event named name passes the filter.
func (f *filter) wants(name []byte) bool {
	if ok, hit := f.cache.get(name); hit {
		return ok
	}
	return f.cache.add(name, func() (bool, bool) { return f.match(name), true })
}

// cached is how many names the filter's cache holds.
func (f *filter) cached() int { return f.cache.len() }

// wantsBy reports whether the client, whose filter is f, is to get e:
// f is nil (no filter), or e is addressed to the client, or e's name
// passes f. An event whose header cannot be parsed goes to everyone, as
// it did before filters.
func (c *Conn) wantsBy(f *filter, e *Event) bool {
	if f == nil {
		return true
	}
	if !e.parsed() {
		return true
	}
	if e.Header.To != ([16]byte{}) && e.Header.To == c.hello.ClientID {
		return true
	}
	return f.wants(e.Header.Event)
}

// sendEach queues e for each client that takes it, deciding client by
// client, and returns how many it was filtered out for.
func (ch *Channel) sendEach(e *Event, except *Conn) (filtered uint64) {
	for _, c := range ch.receiverList() {
		if c == except || c.removed.Load() {
			continue
		}
		if f := c.interest.Load(); c.wantsBy(f, e) {
			c.pushFiltered(e, true, f)
		} else {
			filtered++
		}
	}
	return filtered
}

// refiltered reports whether e, which the fan-out let through by the
// filter seen, is not to be queued after all: the client's filter has
// been swapped since, and the new one does not take it. It counts e as
// filtered then. c.mu is held: filters are swapped under it.
func (c *Conn) refiltered(e *Event, seen *filter) bool {
	f := c.interest.Load()
	if f == seen || c.wantsBy(f, e) {
		return false
	}
	c.ch.filtered.Add(1)
	return true
}

// interestOf compiles the interest a Hello declares, when the version
// both sides speak has it; nil means every event.
func interestOf(h *wire.Hello, version uint64) (*filter, error) {
	if version < wire.InterestVersion || h.Interest == nil || h.Interest.All {
		return nil, nil
	}
	return compileInterest(h.Interest.Patterns, nil)
}

// interestChanged takes an Interest frame: it compiles the declaration,
// makes it the client's filter and queues the Applied frame that says
// so. A declaration that breaks the limits or does not compile closes
// the client. It reports false when the connection must stop reading.
func (c *Conn) interestChanged(body []byte) bool {
	c.pings.Add(1) // the client is there (liveness)
	in, err := wire.DecodeInterest(body)
	if err != nil {
		c.finish(slog.LevelWarn, wire.CodeProtocol, "interest: "+err.Error(), errorGrace)
		return false
	}
	var f *filter
	if !in.All {
		if f, err = compileInterest(in.Patterns, c.interest.Load()); err != nil {
			c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
			return false
		}
	}
	// Swapped under c.mu, which the fan-out's push takes, and then
	// Applied is queued: every event queued behind it went through f
	// (pushFiltered).
	c.mu.Lock()
	c.setInterest(f)
	c.mu.Unlock()
	applied := NewEvent(wire.AppendApplied(nil, in.Seq))
	applied.control = true
	c.push(&applied)
	return true
}

// setInterest makes f the client's filter, and then bumps its channel's
// generation of filters, so that no audience made before serves an
// event read after (audience.go). c.mu is held.
func (c *Conn) setInterest(f *filter) {
	c.interest.Store(f)
	c.ch.filterGen.Add(1)
}

// Interest returns a copy of the patterns the client declared, nil when
// it takes every event (it declared nothing, or All).
func (c *Conn) Interest() []string {
	if f := c.interest.Load(); f != nil {
		return slices.Clone(f.patterns)
	}
	return nil
}

// filterHeld takes q, the events queued for a client before its Hello
// said what it listens to, and drops those that its filter f does not
// pass; it returns what is kept and how many were dropped.
func filterHeld(q sendQueue, f *filter, to [16]byte) (sendQueue, uint64) {
	if f == nil {
		return q, 0
	}
	var kept sendQueue
	var n uint64
	for i, frame := range q.frames {
		ref := q.refs[i]
		if h, err := wire.ParseEvent(frame[wire.HeaderLen:]); err == nil && h.To != to && !f.wants(h.Event) {
			if ref != nil {
				ref.release()
			}
			n++
			continue
		}
		kept.add(frame, ref, entryCost(frame, ref))
	}
	return kept, n
}
