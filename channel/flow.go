package channel

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// Back-pressure.
//
// Each client's queue has two marks below maxpending: high (half of it)
// and low (a quarter). On a channel whose overflow is OverflowBlock, a
// push that leaves a client's queue past high marks the Event with that
// client (Event.hold). The read loop of the publisher that sent the event
// waits, once the Handler has returned, until that queue is back under
// low: it reads nothing meanwhile, so the publisher's socket fills and
// its Emit waits. The network link waits the same way, but for a short
// while only (Event.HoldBack).
//
// The marks: what lies between high and maxpending is headroom for what
// comes past the mark anyway (one frame from each publisher that pushed
// before it saw the mark, network events the link no longer waits for,
// a reply from a publisher that a cycle lets through), so that a client
// held to that policy is never dropped at maxpending while it still
// reads. Low at half of high keeps the client's socket busy: a quarter
// of maxpending (2 MiB by default, some 6,500 events of 128 bytes) is
// still queued when the publishers are let go, far more than they need
// to start again, and waking them once per half-queue rather than once
// per frame keeps the cost of a stall per event negligible.
//
// A publisher is never held on behalf of its own queue, and never in a
// cycle: a reader does not wait on a client whose reader waits, through
// a chain of such waits, on the reader itself (waitsOn). Two readers
// that start waiting on each other at the same moment see it at their
// next look, every recheck, and one or both go on. A chain that the
// server cannot see (a process whose listener on one connection emits on
// another) is broken by stalltimeout.
//
// A held reader looks every recheck at the client it waits on. One
// that has taken nothing (no byte written to it) for stalltimeout, and
// that is not itself held, is dropped as a slow consumer
// (wire.CodeSlowConsumer, counted in StallTimeouts): its publishers go
// on. maxpending stays the hard bound of every queue, whatever the
// policy.

// Overflow is a channel's policy for a client whose queue fills up.
type Overflow uint8

const (
	// OverflowBlock holds back the publishers that feed a client past
	// its high-water mark until it drains, and drops it only when it
	// takes nothing for the stall timeout (or reaches maxpending).
	OverflowBlock Overflow = iota
	// OverflowDrop never slows a publisher: a client whose queue would
	// pass maxpending is dropped as a slow consumer.
	OverflowDrop
)

// DefaultStallTimeout is the StallTimeout used when a Config leaves it
// 0. Long enough that a healthy client paused by a collection, a busy
// machine or a listener that works for a few hundred milliseconds is
// never dropped; short enough that the publishers a dead client holds
// are back within two seconds. A held reader reads none of its client's
// pings meanwhile; the liveness check pings the client instead
// (checkLiveness), so that a longer hold does not cost it its
// connection.
const DefaultStallTimeout = 2 * time.Second

// maxNetHold bounds how long the network link waits for one client past
// its high-water mark, per time it passes it: the link's socket holds
// only milliseconds of a full-speed stream, and datagrams it drops cost
// a repair. Past that, events are queued for the client as they come,
// and it is dropped if its queue reaches maxpending.
const maxNetHold = 100 * time.Millisecond

// recheck is how often a held reader looks again at the client it waits
// on: for a cycle, for the stall timeout, for the channel stopping.
const recheck = 2 * time.Millisecond

// maxWaitChain bounds the walk along a chain of waiting readers.
const maxWaitChain = 64

// The writer writes its batch in chunks of at most this many frames and
// bytes, so that what it has written is counted, and the waiters woken,
// as it goes: a client that reads slowly but steadily is never taken for
// one that reads nothing. 1024 iovecs is what one writev takes.
const (
	writeChunkFrames = 1024
	writeChunkBytes  = 256 << 10
)

// marks returns a queue's high- and low-water marks for maxpending.
func marks(maxPending int) (high, low int) { return maxPending / 2, maxPending / 4 }

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is the monotonic clock in nanoseconds, as an int64 an atomic
// can hold.
func monoNow() int64 { return int64(time.Since(epoch)) }

// Clock reads the clock that Event.SetArrived takes, in nanoseconds.
func Clock() int64 { return monoNow() }

// SetArrived records when e arrived, read from Clock: events that came
// together, in one message from a link, share one reading, so that the
// ring reads the clock once for them rather than once per event. An
// Event that is not given one is stamped when the ring takes it.
func (e *Event) SetArrived(at int64) { e.at = at }

// Holding reports whether e left a client past its high-water mark:
// HoldBack then waits for it.
func (e *Event) Holding() bool { return e.hold != nil }

// HoldBack waits while a client that took e is past its high-water mark,
// for at most min(its channel's stall timeout, 100 ms) since it passed
// it. It is for events from outside any client's read loop, such as the
// network link's: call it after sending e. A client that the bound lets
// down gets e all the same, and is dropped if its queue reaches
// maxpending.
func (e *Event) HoldBack() { e.holdBack(true) }

// HoldBackStall waits while a client that took e is past its high-water
// mark as a local publisher waits: until it drains, or is dropped for
// taking nothing for its channel's stall timeout. It is for a link that
// a wait holds back alone and whose senders wait with it, as NATS's
// subscriptions under flow control; HoldBack bounds the wait for a link
// whose socket a wait would overrun.
func (e *Event) HoldBackStall() { e.holdBack(false) }

// holdBack waits for the client that e left past its mark, if any: at
// most maxNetHold (or the stall timeout if shorter) when bounded.
func (e *Event) holdBack(bounded bool) {
	r := e.hold
	if r == nil {
		return
	}
	e.hold = nil
	var bound time.Duration
	if bounded {
		bound = min(r.ch.limits.Load().stall, maxNetHold)
	}
	r.awaitDrain(nil, bound)
}

// awaitDrain holds the read loop of src (nil for a caller outside any
// read loop) while r's queue is past its low-water mark, after r passed
// its high one. With bound > 0 it waits at most that long since r passed
// the mark. It returns at once when waiting would close a cycle.
func (r *Conn) awaitDrain(src *Conn, bound time.Duration) {
	if src != nil && r.waitsOn(src) {
		return
	}
	var deadline int64
	if bound > 0 {
		if deadline = r.overSince.Load() + int64(bound); monoNow() >= deadline {
			return
		}
	}
	drained := r.drainSignal()
	if drained == nil {
		return // drained already
	}
	start := time.Now()
	var stop, srcDead <-chan struct{}
	if src != nil {
		src.waitingOn.Store(r)
		stop, srcDead = src.ch.liveStop, src.dead
	}
	t := time.NewTimer(recheck)
	for drained != nil && r.held(src, drained, deadline, stop, srcDead, t) {
		drained = r.drainSignal()
	}
	t.Stop()
	if src != nil {
		src.waitingOn.Store(nil)
		src.heldUntil.Store(monoNow())
	}
	r.ch.stalls.Add(1)
	r.ch.stalledUS.Add(uint64(time.Since(start).Microseconds()))
}

// drainSignal returns the channel that is closed when r's queue goes
// under its low-water mark, or nil when there is nothing to wait for: it
// is there already, r is dropped or closing, or its channel no longer
// blocks.
func (r *Conn) drainSignal() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	lim := r.ch.limits.Load()
	if !lim.block || r.closeAfter || r.isDead() || r.pending <= lim.low {
		return nil
	}
	if r.drained == nil {
		r.drained = make(chan struct{})
	}
	return r.drained
}

// held waits once: until r drains, is dropped or closes, the caller's
// channel stops or the caller dies, or the timer fires, after which it
// looks for a cycle, the bound and the stall timeout. It reports whether
// to look at r's queue again and go on waiting.
func (r *Conn) held(src *Conn, drained <-chan struct{}, deadline int64, stop, srcDead <-chan struct{}, t *time.Timer) bool {
	select {
	case <-drained:
		// Let go: go on even if others have refilled the queue past
		// low since, or one publisher could starve behind the rest.
		return false
	case <-r.dead:
		return false
	case <-stop:
		return false
	case <-srcDead:
		return false
	case <-t.C:
	}
	t.Reset(recheck)
	now := monoNow()
	if src != nil && r.waitsOn(src) || deadline != 0 && now >= deadline {
		return false
	}
	r.checkStall(r.ch.limits.Load(), now)
	return true
}

// waitsOn reports whether r is src, or r's reader waits, through a
// chain of waiting readers, on src.
func (r *Conn) waitsOn(src *Conn) bool {
	x := r
	for range maxWaitChain {
		if x == nil {
			return false
		}
		if x == src {
			return true
		}
		x = x.waitingOn.Load()
	}
	return false
}

// checkStall drops r as a slow consumer when it has taken nothing for
// the stall timeout since it passed its high-water mark. A client whose
// own reader is held is not counted as stalled meanwhile: its
// application may be waiting in Emit, behind someone else.
func (r *Conn) checkStall(lim *limits, now int64) {
	if r.waitingOn.Load() != nil {
		return
	}
	since := max(r.tookAt.Load(), r.overSince.Load(), r.heldUntil.Load())
	idle := time.Duration(now - since)
	if idle < lim.stall/4 {
		return
	}
	// The writer's progress comes in steps: a write into a full socket
	// goes on only once the client has read most of the socket's buffer,
	// which a client reading slowly but steadily can take longer than
	// stalltimeout to do. The writer records each step within a chunk
	// (writeBuffers); what the socket still holds, going down since the
	// last look, says the client is reading between the steps.
	if unread, ok := socketUnread(r.nc); ok {
		if prev := r.unread.Swap(int64(unread)); int64(unread) < prev {
			r.tookAt.Store(now)
			return
		}
	}
	if idle >= lim.stall {
		r.dropStalled(idle, lim.stall)
	}
}

// dropStalled drops a client that took nothing for idle: what waits in
// its queue is discarded, and the error frame comes right after what is
// being written, as at maxpending.
func (r *Conn) dropStalled(idle, limit time.Duration) {
	r.mu.Lock()
	if r.closeAfter || r.isDead() || r.stallDropped {
		r.mu.Unlock()
		return
	}
	r.stallDropped = true
	pending := r.pending
	decided := r.mode.Load() != modeUndecided
	dropped := uint64(0)
	if decided {
		dropped = r.unsentEvents(r.queue.frames, 0)
		r.pending -= r.queue.cost
		r.queue.release()
	}
	r.mu.Unlock()
	r.drop(dropped)
	r.ch.stallTimeouts.Add(1)
	reason := fmt.Sprintf("took nothing for %v with %d bytes pending (stalltimeout %v)", idle.Round(time.Millisecond), pending, limit)
	if decided {
		r.finish(slog.LevelWarn, wire.CodeSlowConsumer, reason, errorGrace)
	} else {
		r.kill(slog.LevelWarn, wire.CodeSlowConsumer.String()+": "+reason)
	}
}

// wakeHeldLocked lets go the readers held for c; c.mu is held.
func (c *Conn) wakeHeldLocked() {
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}
