package bus

import (
	"bytes"
	"fmt"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// reception is what the read loop of one connection keeps between
// frames.
type reception struct {
	c     *Client
	s     *session
	names wire.NameCache
	batch []Message // events decoded and not yet handed to the dispatcher
}

// handOff queues the batch for the dispatcher, waiting for room. It
// reports false when the queue is closed.
func (r *reception) handOff() bool {
	if len(r.batch) == 0 {
		return true
	}
	ok := r.c.queue.pushBatch(r.batch, &r.s.stalled)
	clear(r.batch)
	r.batch = r.batch[:0]
	return ok
}

// end hands off what was decoded, then ends the connection.
func (r *reception) end(why error) bool {
	r.handOff()
	r.c.endSession(r.s, why)
	return false
}

// frame handles one frame's body; with inBuffer, body lies in the read
// buffer and is not to be kept. It reports false when the read loop is
// to return.
func (r *reception) frame(body []byte, inBuffer bool) bool {
	c, s := r.c, r.s
	switch t, _ := wire.TypeOf(body); {
	case t == wire.FrameEvent:
		wm, err := r.names.DecodeEvent(body)
		if err != nil {
			return r.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
		}
		m := Message(wm)
		if inBuffer {
			m.Data = bytes.Clone(m.Data)
		}
		if m.To == uuid.Nil { // replies are not retained: not a place to resume from
			s.after, s.heardEvent = m.ID, true
		}
		if m.InReplyTo != uuid.Nil {
			// Events that came before the reply go to the dispatcher first.
			if !r.handOff() {
				return false
			}
			if c.pending.deliver(m) {
				return true
			}
		}
		if c.listeners.matchAny(m.Event) {
			if r.batch = append(r.batch, m); len(r.batch) == maxBatch {
				return r.handOff()
			}
		}
	case t == wire.FrameError:
		e, err := wire.DecodeError(body)
		if err != nil {
			return r.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
		}
		c.lastWrite(s)
		return r.end(&ServerError{Code: e.Code, Message: e.Message})
	case t == wire.FramePing && s.welcome.Version >= wire.PingVersion:
		if err := wire.DecodePing(body); err != nil {
			return r.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
		}
		c.queueControl(s, pongFrame)
	case t == wire.FrameDrain && s.welcome.Version >= wire.ResumeVersion:
		// What came before the drain goes to the dispatcher first.
		return r.handOff() && c.drain(s, body)
	case t == wire.FrameApplied && s.welcome.Version >= wire.InterestVersion:
		seq, err := wire.DecodeApplied(body)
		if err != nil {
			err = fmt.Errorf("applied frame: %w", err)
		} else {
			err = c.want.appliedFrame(s, seq)
		}
		if err != nil {
			return r.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
		}
	case t == wire.FramePong && s.welcome.Version >= wire.PingVersion:
		if err := wire.DecodePong(body); err != nil {
			return r.end(fmt.Errorf("bus: from channel %q: %w", c.channel, err))
		}
	default:
		return r.end(fmt.Errorf("bus: from channel %q: unexpected %v frame", c.channel, t))
	}
	return true
}
