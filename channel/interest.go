package channel

import (
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"

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
// replaces the client's with one atomic store; the Applied frame that
// answers it is queued after that, so every event fanned out once the
// client reads the Applied goes through the new filter. Each filter caches
// its decision per event name (nameCache): on the fan-out path, deciding
// for one client costs an atomic load and one map lookup, and allocates
// nothing.

// maxCachedNames bounds a filter's cache of decisions: a channel whose
// events have more distinct names than that starts the cache afresh once
// it is full, so that it follows what is sent now.
const maxCachedNames = 4096

// filter is one declaration of a client, compiled. It is never changed
// once made, but for its cache.
type filter struct {
	patterns []string         // as declared, for showclient
	res      []*regexp.Regexp // patterns[i] anchored and compiled
	cache    nameCache
}

// nameCache is a filter's decisions by event name. The map that lookups
// read (cur) is copy-on-write behind an atomic pointer, read without a
// lock. Names not in it are decided under mu and put in fresh, which is
// merged into a new cur once the lookups that went past cur since the
// last merge reach an eighth of cur's size: the cost of copying is then
// spread over that many slow lookups, and a name is in cur after a
// bounded number of events.
type nameCache struct {
	cur   atomic.Pointer[map[string]bool]
	mu    sync.Mutex
	fresh map[string]bool
	slow  int // lookups past cur since it was last replaced
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
	if m := f.cache.cur.Load(); m != nil {
		if ok, hit := (*m)[string(name)]; hit {
			return ok
		}
	}
	return f.decide(name)
}

// decide is wants for a name not in the cache's map.
func (f *filter) decide(name []byte) bool {
	c := &f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, hit := c.fresh[string(name)]
	if !hit {
		ok = f.match(name)
		if c.fresh == nil {
			c.fresh = make(map[string]bool)
		}
		c.fresh[string(name)] = ok
	}
	c.slow++
	n := 0
	cur := c.cur.Load()
	if cur != nil {
		n = len(*cur)
	}
	if c.slow <= n/8 {
		return ok
	}
	next := c.fresh
	if n+len(c.fresh) <= maxCachedNames && n > 0 {
		next = make(map[string]bool, n+len(c.fresh))
		for k, v := range *cur {
			next[k] = v
		}
		for k, v := range c.fresh {
			next[k] = v
		}
	}
	c.cur.Store(&next)
	c.fresh, c.slow = nil, 0
	return ok
}

// cached is how many names the filter's cache holds.
func (f *filter) cached() int {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	n := len(f.cache.fresh)
	if m := f.cache.cur.Load(); m != nil {
		n += len(*m)
	}
	return n
}

// wants reports whether the client is to get e: it declared no filter,
// or e is addressed to it, or e's name passes its filter. An event whose
// header cannot be parsed goes to everyone, as it did before filters.
func (c *Conn) wants(e *Event) bool {
	f := c.interest.Load()
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
	c.interest.Store(f)
	c.Send(wire.AppendApplied(nil, in.Seq))
	return true
}

// Interest returns the patterns the client declared, nil when it takes
// every event (it declared nothing, or All).
func (c *Conn) Interest() []string {
	if f := c.interest.Load(); f != nil {
		return f.patterns
	}
	return nil
}

// filterHeld drops from frames, the events queued for a client before
// its Hello said what it listens to, those its filter f does not pass;
// it returns what is kept and how many were dropped.
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
