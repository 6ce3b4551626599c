package bus

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Listener is one function registered with On or Once.
type Listener struct {
	c       *Client
	pattern string
	literal bool           // pattern has no metacharacters: compare strings
	re      *regexp.Regexp // anchored at both ends
	fn      func(Message)
	once    bool
	fired   atomic.Bool
	removed atomic.Bool
}

// Pattern is the event pattern the listener was registered with.
func (l *Listener) Pattern() string { return l.pattern }

// Off removes the listener, as Client.Off(l) does.
func (l *Listener) Off() { l.c.Off(l) }

func (l *Listener) matches(event string) bool {
	if l.literal {
		return event == l.pattern
	}
	return l.re.MatchString(event)
}

// listenerSet is copy-on-write: readers load the slice without a lock.
type listenerSet struct {
	mu  sync.Mutex
	all atomic.Pointer[[]*Listener]
}

func (s *listenerSet) load() []*Listener {
	if p := s.all.Load(); p != nil {
		return *p
	}
	return nil
}

// add adds l, and counts its pattern in w: it returns the generation of
// w that added the pattern (interest.go).
func (s *listenerSet) add(l *Listener, w *interest) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	next := make([]*Listener, len(old), len(old)+1)
	copy(next, old)
	next = append(next, l)
	s.all.Store(&next)
	return w.add(l.pattern)
}

// remove removes the listeners drop picks, and uncounts their patterns
// in w.
func (s *listenerSet) remove(drop func(*Listener) bool, w *interest) (dropped []*Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	next := make([]*Listener, 0, len(old))
	for _, l := range old {
		if drop(l) {
			l.removed.Store(true)
			w.remove(l.pattern)
			dropped = append(dropped, l)
		} else {
			next = append(next, l)
		}
	}
	s.all.Store(&next)
	return dropped
}

func (s *listenerSet) matchAny(event string) bool {
	for _, l := range s.load() {
		if l.matches(event) {
			return true
		}
	}
	return false
}

// On registers fn for every event whose name fully matches pattern, a
// regular expression anchored at both ends: "log" hears "log" only,
// "nc-.*" hears the whole family. Listeners run one at a time, in the
// order events arrive, on a goroutine of the client's (never on the
// socket's read loop); a slow listener delays the ones after it.
//
// The server forwards the client only the events its listeners match
// (protocol version 4). When pattern is new to the client, On tells the
// server and returns once the server filters by it, one round trip
// later: every event emitted after On returns reaches fn. It does not
// wait when called from a listener (the server's answer may sit behind
// events not yet handed out), nor while the client is disconnected (the
// next connection declares it), nor with ReceiveAll or a server older
// than version 4. Since On may wait for the listeners to take the
// events ahead of the server's answer, a listener must not wait for a
// goroutine that is calling On (nor for a lock that goroutine holds).
func (c *Client) On(pattern string, fn func(Message)) (*Listener, error) {
	return c.listen(pattern, fn, false)
}

// Once is On for a single event: fn runs for the first matching event and
// the listener is then removed, however many events arrive at once.
func (c *Client) Once(pattern string, fn func(Message)) (*Listener, error) {
	return c.listen(pattern, fn, true)
}

func (c *Client) listen(pattern string, fn func(Message), once bool) (*Listener, error) {
	if fn == nil {
		return nil, fmt.Errorf("bus: listener for %q is nil", pattern)
	}
	l := &Listener{c: c, pattern: pattern, fn: fn, once: once}
	if regexp.QuoteMeta(pattern) == pattern {
		l.literal = true
	} else {
		re, err := anchor(pattern)
		if err != nil {
			return nil, fmt.Errorf("bus: event pattern %q: %w", pattern, err)
		}
		l.re = re
	}
	gen := c.listeners.add(l, &c.want)
	c.heard()        // before waiting: the reader must run to read the Applied frame
	c.want.wait(gen) // the server forwards what l listens to
	return l, nil
}

// CheckPattern reports why On and Once would refuse pattern, an event
// pattern, or nil when they take it: for a program that must know before
// it commits to anything (ncclient record, before it opens its file).
func CheckPattern(pattern string) error {
	if regexp.QuoteMeta(pattern) == pattern {
		return nil
	}
	if _, err := anchor(pattern); err != nil {
		return fmt.Errorf("bus: event pattern %q: %w", pattern, err)
	}
	return nil
}

// anchor compiles pattern anchored at both ends. Errors quote the
// pattern as given, never the anchored expression made from it.
func anchor(pattern string) (*regexp.Regexp, error) {
	// Compile alone first: "a)|(b" would otherwise pass, unanchored,
	// and an error would quote the anchors.
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil { // an unclosed \Q swallows the anchor
		return nil, errors.New(`cannot anchor the expression: \Q without \E quotes the anchor; end the quote with \E`)
	}
	return re, nil
}

// Off removes listeners. After Off returns, they are not called again
// (one already running finishes). The server is told of the patterns no
// listener is left for, without waiting.
func (c *Client) Off(ls ...*Listener) {
	c.listeners.remove(func(l *Listener) bool {
		for _, x := range ls {
			if l == x {
				return true
			}
		}
		return false
	}, &c.want)
	// ls, not what remove found: a Once listener about to be called is
	// removed by the dispatcher itself (dispatch).
	c.offStarting(func(l *Listener) bool { return slices.Contains(ls, l) })
}

// OffPattern removes every listener registered with exactly this pattern,
// like an EventEmitter's removeAllListeners(event).
func (c *Client) OffPattern(pattern string) {
	c.listeners.remove(func(l *Listener) bool { return l.pattern == pattern }, &c.want)
	c.offStarting(func(l *Listener) bool { return l.pattern == pattern })
}

// offStarting waits while the dispatcher is about to call a listener
// that off says is being removed: it checked removed before Off set it,
// and would call it after Off returned. A call that has begun goes on.
// The wait spans a few instructions of the dispatcher (dispatch), none
// of a listener's; on the dispatcher itself (Off from a listener, or
// Once) there is nothing to wait for.
func (c *Client) offStarting(off func(*Listener) bool) {
	if c.starting.Load() == nil || goid() == c.want.dispatcher.Load() {
		return
	}
	for {
		l := c.starting.Load()
		if l == nil || !off(l) {
			return
		}
		runtime.Gosched()
	}
}

// dispatchLoop hands received events to listeners until the queue is
// closed and drained, or discarded, or Close stops it. It takes the
// events from the queue in batches: one lock and at most one wake-up per
// batch, not per event.
func (c *Client) dispatchLoop() {
	c.want.dispatcher.Store(goid()) // On from a listener does not wait (interest.go)
	var batch []Message
	for {
		var ok bool
		if batch, ok = c.queue.take(batch); !ok {
			return
		}
		for i := range batch {
			if c.queue.discarded.Load() || !c.dispatch(batch[i]) {
				return
			}
		}
		clear(batch) // keep no event's data alive
	}
}

// dispatch hands m to every listener that matches it. It reports false
// when Close has stopped the dispatcher's calls.
func (c *Client) dispatch(m Message) bool {
	for _, l := range c.listeners.load() {
		if l.removed.Load() || !l.matches(m.Event) {
			continue
		}
		// Off, from now on, waits until the call has begun or l is
		// skipped: it set removed either before the check below, or
		// after the store here, which it sees (offStarting).
		c.starting.Store(l)
		if l.removed.Load() {
			c.starting.Store(nil)
			continue
		}
		if l.once {
			if !l.fired.CompareAndSwap(false, true) {
				c.starting.Store(nil)
				continue
			}
			c.Off(l)
		}
		if !c.listenerCalls.begin() {
			c.starting.Store(nil)
			return false
		}
		c.call(l, m) // clears starting as the call begins
		c.listenerCalls.end()
	}
	return true
}

func (c *Client) call(l *Listener, m Message) {
	defer func() {
		if p := recover(); p != nil {
			c.report(fmt.Errorf("bus: listener for %q panicked on event %q: %v", l.pattern, m.Event, p))
		}
	}()
	c.starting.Store(nil)
	l.fn(m)
}

// queue holds received events until the dispatcher hands them to
// listeners. Events from the socket wait for room; the client's own
// events never wait, so a listener may Emit without deadlock. The
// events the dispatcher has taken and not finished count against the
// limit too, so that it bounds every event received and not yet handed
// to listeners.
//
// When the connection ends the queue is closed: the dispatcher still
// hands out what had arrived (a server that shuts down gracefully writes
// everything before it closes, and none of it is lost here), unless Close
// discards it.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []Message
	inHand int // events the dispatcher took last: it may still be handing them out
	limit  int
	// overdraft is room lent past limit while the dispatcher waits in
	// an Emit from a listener (lend).
	overdraft int
	closed    bool // no more pushes; take drains what is left
	// discarded: take returns at once, and the dispatcher hands out
	// nothing more of what it has taken.
	discarded atomic.Bool
}

func newQueue(limit int) *queue {
	q := &queue{limit: max(limit, 1)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// room is how many more events from the socket fit; q.mu is held.
func (q *queue) room() int { return q.limit + q.overdraft - len(q.items) - q.inHand }

// maxOverdraft is the most events the queue takes past its limit while
// the dispatcher waits in an Emit from a listener.
const maxOverdraft = 1 << 16

// lend sets the room the queue takes past its limit: maxOverdraft while
// the dispatcher waits in an Emit from a listener, 0 again after. The
// dispatcher does not take events while it waits there, and a read loop
// that stopped reading for it would stop the server's reading of what
// the listener emits if that waits on this client's queue: two clients
// that echo each other's streams from their listeners would hold each
// other until the server dropped one (maxpending). With the room lent,
// the client reads on, so its queue at the server drains.
func (q *queue) lend(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.overdraft != n {
		q.overdraft = n
		q.cond.Broadcast()
	}
}

// push appends m without waiting for room. It returns false once the
// queue is closed.
func (q *queue) push(m Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.items = append(q.items, m)
	q.cond.Broadcast()
	return true
}

// pushBatch appends ms, as room allows, waiting for room with stalled
// set meanwhile. It returns false once the queue is closed.
func (q *queue) pushBatch(ms []Message, stalled *atomic.Bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(ms) > 0 {
		if !q.closed && q.room() <= 0 {
			stalled.Store(true)
			for !q.closed && q.room() <= 0 {
				q.cond.Wait()
			}
			stalled.Store(false)
		}
		if q.closed {
			return false
		}
		n := min(len(ms), q.room())
		q.items = append(q.items, ms[:n]...)
		ms = ms[n:]
		q.cond.Broadcast()
	}
	return true
}

// take is called by the dispatcher when it has handed out the events it
// took before (spare holds them, cleared; its memory is reused). It
// waits for events and returns up to half the limit of them, in order.
// It returns false when the queue is closed and empty, or discarded.
func (q *queue) take(spare []Message) ([]Message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inHand > 0 {
		q.inHand = 0
		q.cond.Broadcast() // room for the read loop
	}
	for !q.closed && len(q.items) == 0 {
		q.cond.Wait()
	}
	if q.discarded.Load() || len(q.items) == 0 {
		return nil, false
	}
	var batch []Message
	if n := max(q.limit/2, 1); len(q.items) <= n {
		batch, q.items = q.items, spare[:0]
	} else {
		batch = append(spare[:0], q.items[:n]...)
		rest := copy(q.items, q.items[n:])
		clear(q.items[rest:])
		q.items = q.items[:rest]
	}
	q.inHand = len(batch)
	return batch, true
}

// close stops pushes; take drains what is left.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// discard closes the queue and drops what is left.
func (q *queue) discard() {
	q.mu.Lock()
	q.closed = true
	q.discarded.Store(true)
	q.items = nil
	q.cond.Broadcast()
	q.mu.Unlock()
}

// appCalls tracks a goroutine of the client's that calls the
// application's functions: the dispatcher calls listeners, the notifier
// the ErrorHandler and callbacks. Any of those functions may call Close,
// and Close cannot tell which goroutine it runs on; waiting for its own
// goroutine would never end. What Close can tell is whether that
// goroutine is inside one of the application's functions at the moment:
// if it is not, Close is not called from it and may wait for it to end;
// if it is, Close tells it to call nothing more and leaves it to end
// when the function returns (Done is closed then).
type appCalls struct {
	state atomic.Uint32 // inCall, stopped
	ended chan struct{} // closed when the goroutine returns
}

// The bits of appCalls.state.
const (
	inCall  = 1 << iota // the goroutine is in an application's function
	stopped             // the goroutine calls nothing more
)

// begin is called before each call of an application's function. It
// reports false when the goroutine is to call nothing more, and should
// return.
func (a *appCalls) begin() bool {
	for {
		s := a.state.Load()
		if s&stopped != 0 {
			return false
		}
		if a.state.CompareAndSwap(s, s|inCall) {
			return true
		}
	}
}

// end is called after each call that begin allowed.
func (a *appCalls) end() { a.state.And(^uint32(inCall)) }

// wait waits for the goroutine to end, unless it is in an application's
// function (whose caller Close may be): it then stops the goroutine's
// calls and reports false at once. With stop, the goroutine makes no
// more calls in either case.
func (a *appCalls) wait(stop bool) bool {
	for {
		s := a.state.Load()
		next := s
		if stop || s&inCall != 0 {
			next |= stopped
		}
		if !a.state.CompareAndSwap(s, next) {
			continue
		}
		if s&inCall != 0 {
			return false
		}
		<-a.ended
		return true
	}
}
