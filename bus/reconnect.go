package bus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// supervise waits for each connection to end. It reports why, and then
// connects again, or ends the client when it is closing, when Reconnect
// is off, or when the server refused it for good.
func (c *Client) supervise(s *session) {
	for {
		<-s.done
		s.io.Wait()
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			c.finish(ErrClosed)
			return
		}
		why := s.err
		c.report(why)
		if c.opts.onDisconnect != nil {
			c.notes.add(note{disconnect: why})
		}
		if !c.opts.reconnect || final(why) {
			c.finish(why)
			return
		}
		var err error
		if s, err = c.redial(); s == nil {
			c.finish(cmpErr(err, ErrClosed))
			return
		}
	}
}

// final reports whether a connection's end rules out reconnecting: the
// server refused the client for what it sent, or for who it is, and
// would again.
func final(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.Code == wire.CodeProtocol || se.Code == wire.CodeVersion || se.Code == wire.CodeForbidden)
}

// cmpErr is err, or def when err is nil.
func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// redial connects again, waiting before each attempt as
// ReconnectBackoff says, until it succeeds, Close cancels it (it then
// returns nil, nil) or the server refuses the client for good (final:
// nil and the refusal). Each different reason an attempt failed goes to
// the ErrorHandler once, not at every attempt.
func (c *Client) redial() (*session, error) {
	wait := c.opts.backoffMin
	var said string
	for {
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		s, br, err := c.dial(c.ctx)
		if err == nil {
			if !c.install(s) {
				s.nc.Close()
				return nil, nil
			}
			c.startSession(s, br)
			if c.opts.onReconnect != nil {
				c.notes.add(note{reconnect: true})
			}
			c.resumed(s)
			return s, nil
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		if final(err) {
			c.report(fmt.Errorf("bus: reconnecting to channel %q: %w", c.channel, err))
			return nil, err
		}
		if msg := err.Error(); msg != said {
			said = msg
			c.report(fmt.Errorf("bus: reconnecting to channel %q: %w", c.channel, err))
		}
		wait = min(2*wait, c.opts.backoffMax)
	}
}

// install makes s the client's connection, unless Close has begun. The
// frames buffered while disconnected are given s's origin and sender
// (PROTOCOL.md § 6.1 wants both to match the connection), and pings and
// pongs meant for the last connection are dropped. So is an event over
// s's maxframe, smaller than the last server's: the server would end
// the connection on it, losing the events after it with it. Each one
// dropped is reported (ErrFrameTooBig), as Emit would have failed.
func (c *Client) install(s *session) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.want.handshakeFailed()
		return false
	}
	c.sess, c.last = s, s
	c.rememberOwn(s)
	c.maxFrame.Store(int64(s.welcome.MaxFrame))
	var tooBig []error
	c.out = restamp(c.out, s.welcome.Node, s.id, s.welcome.MaxFrame, func(frame []byte) {
		name := "?"
		if hdr, err := wire.ParseEvent(frame[wire.HeaderLen:]); err == nil {
			name = wire.Clip(string(hdr.Event), 32)
		}
		tooBig = append(tooBig, fmt.Errorf("%w: event %s, kept while disconnected, is %d bytes, and the server now takes at most %d: dropped",
			ErrFrameTooBig, name, len(frame)-wire.HeaderLen, s.welcome.MaxFrame))
	})
	c.space.Broadcast()
	c.mu.Unlock()
	for _, err := range tooBig {
		c.report(err)
	}
	// After restamp, which drops the Interest frames of the last
	// connection: what changed since the Hello goes out on this one.
	c.want.connected(s)
	return true
}

// restamp writes origin and sender into every event frame in out, which
// holds only frames the client encoded, and drops the other frames
// (pings and pongs), and the events over maxFrame bytes, which it hands
// to tooBig first. It works in place.
func restamp(out []byte, origin, sender [16]byte, maxFrame uint64, tooBig func(frame []byte)) []byte {
	kept := 0
	for off := 0; off+wire.HeaderLen <= len(out); {
		size := wire.HeaderLen + int(uint32(out[off])<<24|uint32(out[off+1])<<16|uint32(out[off+2])<<8|uint32(out[off+3]))
		frame := out[off : off+size]
		off += size
		if wire.FrameType(frame[wire.HeaderLen+1]) != wire.FrameEvent {
			continue
		}
		if uint64(size-wire.HeaderLen) > maxFrame {
			tooBig(frame)
			continue
		}
		wire.StampEvent(frame, origin, sender)
		kept += copy(out[kept:], frame)
	}
	return out[:kept]
}

// The frames of the liveness check; never modified.
var (
	pingFrame = wire.AppendPing(nil)
	pongFrame = wire.AppendPong(nil)
)

// queueControl queues a ping or pong for connection s, if it is still
// the client's connection. It never waits for room: the reader answers
// pings with it, and must not block on its own writer.
func (c *Client) queueControl(s *session, frame []byte) {
	c.mu.Lock()
	if c.sess != s {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, frame...)
	c.mu.Unlock()
	c.poke()
}

// poke wakes the writer.
func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pingLoop watches connection s: when nothing has come from the server
// for the ping interval it sends a ping, and when nothing has come for
// the ping timeout it ends the connection. A reader waiting for room in
// the receive queue is not reading, through no fault of the server's,
// and counts as hearing from it. So does each writeChunk of the send
// queue written: the server is reading, and a server that holds its
// publisher back (flow control) reads slowly, with the ping queued
// behind the events. The pings alone are far less.
func (c *Client) pingLoop(s *session) {
	defer s.io.Done()
	interval, timeout := c.opts.pingInterval, c.opts.pingTimeout
	tick := time.NewTicker(max(interval/4, time.Millisecond))
	defer tick.Stop()
	heard, wrote, since := s.heard.Load(), s.wrote.Load(), time.Now()
	var pinged time.Time
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		now := time.Now()
		if h, w := s.heard.Load(), s.wrote.Load(); h != heard || w-wrote >= writeChunk || s.stalled.Load() {
			heard, wrote, since = h, w, now
			continue
		}
		switch idle := now.Sub(since); {
		case idle >= timeout:
			c.endSession(s, fmt.Errorf("%w: nothing from the server of channel %q for %v (ping timeout %v)",
				ErrPingTimeout, c.channel, idle.Round(time.Millisecond), timeout))
			return
		case idle >= interval && now.Sub(pinged) >= interval:
			c.queueControl(s, pingFrame)
			pinged = now
		}
	}
}

// report hands an error to the ErrorHandler, if there is one.
func (c *Client) report(err error) {
	if c.opts.errorHandler != nil {
		c.notes.add(note{err: err})
	}
}

// note is one call for the notifier to make: the ErrorHandler with err,
// OnDisconnect with disconnect, or OnReconnect.
type note struct {
	err        error
	disconnect error
	reconnect  bool
	missed     uint64 // OnMissed
}

// maxErrNotes bounds the errors waiting for a slow ErrorHandler; past
// it, errors are dropped rather than block the bus. Disconnect and
// reconnect notes are never dropped: there is at most one of each per
// reconnection.
const maxErrNotes = 16

// notifier runs the ErrorHandler and the callbacks on one goroutine, in
// the order things happened.
type notifier struct {
	mu    sync.Mutex
	notes []note
	errs  int // error notes in notes
	wake  chan struct{}
}

func (n *notifier) add(x note) {
	n.mu.Lock()
	if x.err != nil {
		if n.errs >= maxErrNotes {
			n.mu.Unlock()
			return
		}
		n.errs++
	}
	n.notes = append(n.notes, x)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run makes the calls until the client has ended and every note is
// made.
func (n *notifier) run(c *Client) {
	for {
		ended := false
		select {
		case <-n.wake:
		case <-c.ended:
			ended = true
		}
		n.mu.Lock()
		batch := n.notes
		n.notes, n.errs = nil, 0
		n.mu.Unlock()
		for _, x := range batch {
			if !c.callbackCalls.begin() {
				return
			}
			switch {
			case x.err != nil:
				c.opts.errorHandler(x.err)
			case x.disconnect != nil:
				c.opts.onDisconnect(x.disconnect)
			case x.reconnect:
				c.opts.onReconnect()
			case x.missed > 0:
				c.opts.onMissed(x.missed)
			}
			c.callbackCalls.end()
		}
		if ended {
			return
		}
	}
}
