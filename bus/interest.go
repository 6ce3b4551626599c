package bus

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/netcluster/netcluster/internal/wire"
)

// Interest (PROTOCOL.md § 5.3). A client of protocol version 4 tells
// the server which event names its listeners match, so that the server
// forwards it only those (and the events addressed to it). The Hello
// carries the patterns of the moment; each change that follows goes in
// an Interest frame, numbered, which the server answers with an Applied
// frame once it filters by it.
//
// On and Once that add a pattern wait for that answer, so that every
// event emitted after they return reaches the new listener. Off and a
// Once that fired narrow the interest without waiting: the client drops
// what no listener matches anyway. At most one declaration is in flight;
// changes made meanwhile are sent as one when its Applied comes, so a
// flood of On and Off costs one frame per round trip and no memory but
// the patterns themselves.

// decl is a declaration the client made: the generation of its patterns
// it was built from, or All.
type decl struct {
	gen uint64
	all bool
}

// covers reports whether d forwards the events of a pattern added at
// generation gen. A declaration built at gen or later holds every
// pattern added by then, unless its listeners have all gone since.
func (d decl) covers(gen uint64) bool { return d.all || d.gen >= gen }

// patternUse counts the listeners registered with one pattern.
type patternUse struct {
	n   int
	gen uint64 // the generation that added the pattern
}

// interest is what the client declares, and what the server has
// applied of it on the current connection.
type interest struct {
	c    *Client
	mu   sync.Mutex
	cond sync.Cond // signalled whenever a waiter's answer may have changed

	off      bool // ReceiveAll: declare nothing, send nothing, never wait
	sinceAll bool // Since asked for history: All until the first listener
	patterns map[string]*patternUse
	odd      int    // patterns that cannot be declared (too long, not UTF-8)
	gen      uint64 // bumped by every change of the patterns

	s       *session // the connection declarations go to; nil while there is none
	hello   bool     // a handshake is under way, its Hello built
	quiet   bool     // s does not take declarations (a server older than version 4)
	seq     uint64   // the last Interest frame's seq on s
	applied decl     // in force at the server on s
	flying  bool     // an Interest frame awaits its Applied
	sent    decl     // the declaration in flight
	ended   bool     // the client is closing: nobody waits any more

	dispatcher atomic.Uint64 // the goroutine id of the dispatcher
}

func (w *interest) init(c *Client) {
	w.c = c
	w.cond.L = &w.mu
	w.off = c.opts.receiveAll
	w.sinceAll = c.opts.since > 0
	w.patterns = make(map[string]*patternUse)
}

// all reports whether the client declares All: history is on its way
// (Since), or its patterns do not fit a declaration. w.mu is held.
func (w *interest) all() bool {
	return w.sinceAll || w.odd > 0 || len(w.patterns) > wire.MaxPatterns
}

// declaration builds the declaration of the moment, numbered seq, its
// patterns sorted. w.mu is held.
func (w *interest) declaration(seq uint64) (decl, *wire.Interest) {
	d := decl{gen: w.gen, all: w.all()}
	in := &wire.Interest{Seq: seq, All: d.all}
	if !d.all {
		in.Patterns = make([]string, 0, len(w.patterns))
		for p := range w.patterns {
			in.Patterns = append(in.Patterns, p)
		}
		slices.Sort(in.Patterns)
	}
	return d, in
}

// undeclarable reports whether pattern cannot go in a declaration.
func undeclarable(pattern string) bool {
	return len(pattern) > wire.MaxPatternLen || !utf8.ValidString(pattern)
}

// helloLimit is the largest Hello body a server reads (PROTOCOL.md
// § 3.1): 65536 bytes, or its maxframe when that is smaller.
func (c *Client) helloLimit() int {
	limit := 64 << 10
	if mf := int(c.maxFrame.Load()); mf > 0 {
		limit = min(limit, mf)
	}
	return limit
}

// helloInterest puts the declaration of the moment in h, the Hello of
// connection s, and notes that a handshake is under way: On then waits
// for it, so that a pattern added meanwhile is declared once it ends.
// A declaration that would make the Hello too big is All; the patterns
// follow in an Interest frame.
func (w *interest) helloInterest(s *session, h *wire.Hello) {
	if w.off {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hello = true
	d, in := w.declaration(0)
	h.Interest = in
	if len(wire.AppendHello(nil, h))-wire.HeaderLen > w.c.helloLimit() {
		// Generation 0: connected sends the patterns at once.
		d = decl{all: true}
		h.Interest = &wire.Interest{All: true}
	}
	s.declared = d
}

// handshakeFailed notes that a handshake helloInterest was called for
// did not make a connection.
func (w *interest) handshakeFailed() {
	w.mu.Lock()
	w.hello = false
	w.cond.Broadcast()
	w.mu.Unlock()
}

// connected makes s, newly installed, the connection declarations go
// to. Its Hello's declaration is in force; whatever changed since goes
// out at once.
func (w *interest) connected(s *session) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hello = false
	select {
	case <-s.done: // Close got to it first
		w.s = nil
		w.cond.Broadcast()
		return
	default:
	}
	w.s, w.seq, w.flying = s, 0, false
	w.quiet = w.off || s.welcome.Version < wire.InterestVersion
	if w.quiet {
		w.applied = decl{all: true} // the server forwards everything
	} else {
		w.applied = s.declared
	}
	w.update()
	w.cond.Broadcast()
}

// lost notes that connection s ended, or was drained: the next Hello
// declares what the patterns are then.
func (w *interest) lost(s *session) {
	w.mu.Lock()
	if w.s == s {
		w.s, w.flying = nil, false
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

// shutdown releases every waiter for good: the client is closing.
func (w *interest) shutdown() {
	w.mu.Lock()
	w.ended = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// update sends the declaration of the moment when it is newer than the
// last one sent on the connection and none is in flight. w.mu is held.
func (w *interest) update() {
	last := w.applied
	if w.flying {
		last = w.sent
	}
	if w.s == nil || w.quiet || w.flying || w.gen <= last.gen {
		return
	}
	s := w.s
	w.seq++
	d, in := w.declaration(w.seq)
	frame := wire.AppendInterest(nil, in)
	if uint64(len(frame)-wire.HeaderLen) > s.welcome.MaxFrame {
		d.all = true
		frame = wire.AppendInterest(nil, &wire.Interest{Seq: w.seq, All: true})
	}
	w.sent, w.flying = d, true
	// Queued like a pong: never waiting for room in the send buffer, and
	// dropped when s is no longer the connection (the next Hello says it
	// all).
	w.c.queueControl(s, frame)
}

// add counts a listener registered with pattern, and declares the
// pattern when it is new. It returns the generation that added it.
func (w *interest) add(pattern string) uint64 {
	if w.off {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.patterns[pattern]
	if u == nil {
		w.gen++
		u = &patternUse{gen: w.gen}
		w.patterns[pattern] = u
		if undeclarable(pattern) {
			w.odd++
		}
		w.sinceAll = false // a listener is in place for the history
		w.update()
	}
	u.n++
	return u.gen
}

// remove uncounts a listener registered with pattern, and narrows the
// declaration when it was the pattern's last.
func (w *interest) remove(pattern string) {
	if w.off {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.patterns[pattern]
	if u == nil {
		return
	}
	if u.n--; u.n > 0 {
		return
	}
	delete(w.patterns, pattern)
	if undeclarable(pattern) {
		w.odd--
	}
	w.gen++
	w.update()
}

// covered reports whether the server forwards, from now on, the events
// of a pattern added at generation gen; or whether there is no point in
// waiting for it: no connection and none being made (the next Hello
// declares it), or the client closing. w.mu is held.
func (w *interest) covered(gen uint64) bool {
	switch {
	case w.ended:
		return true
	case w.s == nil:
		return !w.hello
	case w.quiet:
		return true
	}
	return w.applied.covers(gen) && (!w.flying || w.sent.covers(gen))
}

// wait returns once the server forwards the events of a pattern added
// at generation gen (see covered). Called by the dispatcher, from a
// listener, it returns at once: the Applied frame it would wait for may
// sit behind events the dispatcher has yet to take.
func (w *interest) wait(gen uint64) {
	if w.off || gen == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.covered(gen) || goid() == w.dispatcher.Load() {
		return
	}
	for !w.covered(gen) {
		w.cond.Wait()
	}
}

// appliedFrame takes the server's Applied frame for seq on connection
// s. An answer to a declaration never sent is an error, which ends the
// connection.
func (w *interest) appliedFrame(s *session, seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.s != s {
		return nil
	}
	if seq > w.seq || w.quiet {
		return fmt.Errorf("applied frame for interest %d; the client declared up to %d", seq, w.seq)
	}
	if !w.flying || seq != w.seq {
		return nil // a repeated answer: nothing new
	}
	w.applied, w.flying = w.sent, false
	w.update()
	w.cond.Broadcast()
	return nil
}

// goid is the id of the calling goroutine, from the first line of its
// stack trace, "goroutine 42 [running]:". On needs to know whether it
// runs on the dispatcher; it asks only when it would otherwise wait.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	var id uint64
	for _, ch := range b[len(prefix):] {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}
