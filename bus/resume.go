package bus

import (
	"errors"
	"fmt"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// Resuming (PROTOCOL.md § 5.2). A server of protocol version 3 keeps a
// ring of each channel's recent events and says, in each Welcome, where
// the client stands in it. The client remembers the id of the last event
// it received, and a connection made to replace a broken one says in its
// Hello where it stood: the server then sends what the client missed,
// before anything live. After a server restart the new ring holds all
// the new server has had, which is all the client has not: the old
// server drained the client before it closed.

// ErrMissed matches the error the ErrorHandler gets when the client
// reconnected and the server no longer held all that it had missed:
// errors.Is(err, ErrMissed), and errors.As gives the *MissedError.
var ErrMissed = errors.New("bus: events missed while reconnecting")

// MissedError says how many events the client missed while it
// reconnected and will never receive: the server's ring of retained
// events (its retainbytes and retainage) no longer held them.
type MissedError struct {
	Channel string
	Count   uint64
}

func (e *MissedError) Error() string {
	return fmt.Sprintf("bus: channel %q: %d events missed while reconnecting, no longer retained by the server", e.Channel, e.Count)
}

// Is makes errors.Is(err, ErrMissed) true.
func (e *MissedError) Is(target error) bool { return target == ErrMissed }

// Since makes the first Dial ask the server for the channel's events of
// the last d, which the listeners then get before anything live, as far
// as the server still retains them (its retainbytes and retainage). The
// client reads nothing from the server until the first On, Once or
// Request, so that the history is not handed out before there is a listener for
// it: register the listeners that want it first, with no other call in
// between, and within the server's pingtimeout. By default a first Dial
// receives only what is emitted after it, as an EventEmitter would;
// reconnections always resume where the client stood, whatever this
// option says.
func Since(d time.Duration) Option { return func(o *options) { o.since = max(d, 0) } }

// OnMissed sets a function called with the number of events the client
// missed, each time it reconnects and the server no longer holds all of
// them. The ErrorHandler gets a *MissedError too. It runs where
// OnDisconnect does.
func OnMissed(f func(n uint64)) Option { return func(o *options) { o.onMissed = f } }

// Missed is how many events the client has missed for good since Dial:
// emitted while it reconnected, and no longer retained by the server
// when it came back.
func (c *Client) Missed() uint64 { return c.missed.Load() }

// resumeHello fills in where the client resumes: from the cursor of its
// last connection, if it has had one, else the history Since asks for.
func (c *Client) resumeHello(h *wire.Hello) {
	c.mu.Lock()
	prev := c.last
	h.Own = append(h.Own, c.own...)
	c.mu.Unlock()
	if prev == nil {
		h.Since = uint64(c.opts.since / time.Millisecond)
		return
	}
	if prev.welcome.Epoch != ([16]byte{}) {
		// prev's reader has returned (the supervisor waited for it), so
		// its cursor is settled.
		h.Resume = wire.Cursor{Epoch: prev.welcome.Epoch, After: prev.welcome.From}
		if prev.heardEvent {
			h.Resume.After = prev.after
		}
	}
}

// rememberOwn adds the id of a new connection to those whose events the
// server must never replay to the client: its own.
func (c *Client) rememberOwn(s *session) {
	c.own = append(c.own, s.id)
	if len(c.own) > wire.MaxOwn {
		c.own = c.own[len(c.own)-wire.MaxOwn:]
	}
}

// resumed reports what connection s missed for good, if anything.
func (c *Client) resumed(s *session) {
	n := s.welcome.Missed
	if n == 0 {
		return
	}
	c.missed.Add(n)
	c.report(&MissedError{Channel: c.channel, Count: n})
	if c.opts.onMissed != nil {
		c.notes.add(note{missed: n})
	}
}

// lastWrite lets the write in progress on connection s end before the
// reader ends s for the server's Error frame. A server that drops a
// client (a slow consumer, a ping timeout) reads on what it sent up to
// its close (PROTOCOL.md § 8): the events of that write are delivered,
// where closing at once would cut it and lose them. No write starts
// meanwhile: Emit keeps events for the next connection, as while
// disconnected. A server that reads nothing more makes the write fail,
// or the pinger, or Close, ends s.
func (c *Client) lastWrite(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		c.drained = s // Close ends it
		c.space.Broadcast()
	}
	for c.writing && c.drained == s {
		c.space.Wait()
	}
}

// drainFrame is the Drain frame; never modified.
var drainFrame = wire.AppendDrain(nil)

// drain answers the server's Drain on connection s: the server is
// stopping. From now on Emit keeps events for the next connection, as
// while disconnected; once the batch being written is out, the client
// answers with a Drain, after which the server has read all it wrote.
// The reader goes on with what the server still sends, up to its error
// frame. drain reports false when s has ended.
//
// It is called by the reader, so the server's frames wait meanwhile;
// the server, stopping, reads what the client writes, so the wait ends.
func (c *Client) drain(s *session, body []byte) bool {
	if err := wire.DecodeDrain(body); err != nil {
		c.endSession(s, fmt.Errorf("bus: from channel %q: %w", c.channel, err))
		return false
	}
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
		c.drained = s
		c.space.Broadcast()
	}
	for c.writing {
		c.space.Wait()
	}
	c.mu.Unlock()
	c.want.lost(s) // the next Hello declares what changes from now on
	// A failed write is not why the connection ends: the server has
	// closed it, and the reader finds out why.
	s.nc.SetWriteDeadline(time.Now().Add(c.opts.timeout))
	s.nc.Write(drainFrame)
	return true
}

// awaitListener holds the first connection's reader, when Since asked
// for history, until a listener is registered or the connection ends.
// Meanwhile the reader counts as stalled, so that the pinger does not
// take the quiet for a dead server.
func (c *Client) awaitListener(s *session) {
	if c.listening == nil {
		return
	}
	s.stalled.Store(true)
	defer s.stalled.Store(false)
	select {
	case <-c.listening:
	case <-s.done:
	}
}

// heard releases the reader that awaitListener holds: a listener is
// registered, or a Request waits for its reply.
func (c *Client) heard() {
	if c.listening != nil {
		c.listeningOnce.Do(func() { close(c.listening) })
	}
}
