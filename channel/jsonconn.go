package channel

import (
	"bufio"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// A connection's modes: which protocol its client speaks.
const (
	modeUndecided uint32 = iota // nothing read yet, grace not over
	modeBinary                  // the framed protocol (PROTOCOL.md § 3 to 9)
	modeJSON                    // the JSON text protocol (PROTOCOL.md § 10)
)

// ErrorEvent is the event name of the last message a JSON client hears
// before the server closes its connection, the JSON counterpart of an
// Error frame: its data is {"code": n, "message": "why"}.
const ErrorEvent = "nc-error"

// becomeJSON makes the connection a JSON client: it gets a client id of
// the server's choosing, and the frames held for it are put into JSON
// form, ahead of anything queued after.
func (c *Conn) becomeJSON(silent bool) {
	c.graceJSON = silent
	id := uuid.New()
	c.ch.register(c, id) // a random id: never taken
	c.mu.Lock()
	c.hello = wire.Hello{ClientID: id}
	held, heldBytes := c.queue, c.pending
	c.queue, c.pending = sendQueue{}, 0
	c.mode.Store(modeJSON)
	c.mu.Unlock()

	var texts sendQueue
	for _, frame := range held.frames {
		e := NewEvent(frame)
		if text, ok := e.text(c.ch); ok {
			texts.add(text, nil, entryCost(text, nil))
		} else {
			c.drop(1)
		}
	}
	n := len(held.frames)
	held.release() // the texts are copies
	c.mu.Lock()
	c.pending += texts.cost // what was queued meanwhile is counted already
	texts.frames = append(texts.frames, c.queue.frames...)
	texts.refs = append(texts.refs, c.queue.refs...)
	texts.cost += c.queue.cost
	c.queue = texts
	pending, queued := c.pending, len(c.queue.frames)
	c.mu.Unlock()
	c.poke()
	how := "its first byte is '{'"
	if silent {
		how = fmt.Sprintf("it said nothing within %v", c.ch.cfg.JSONGrace)
	}
	c.logger().Debug("JSON client connected", "id", uuid.UUID(c.hello.ClientID), "held", n, "why", how)
	// One held event alone is taken whatever the length of its text, as
	// pushFiltered takes it.
	if limit := c.ch.maxPending(); pending > limit && heldBytes > 0 && queued > 1 {
		c.ch.slow.Add(1)
		c.kill(slog.LevelWarn, fmt.Sprintf("slow consumer: %d bytes pending in JSON form, limit (maxpending) %d", pending, limit))
	}
}

// errorMessage is the last thing a client hears before the server closes
// it: an Error frame, or for a JSON client an ErrorEvent message. Called
// with c.mu held.
func (c *Conn) errorMessage(code wire.ErrorCode, reason string) []byte {
	frame := wire.AppendError(nil, &wire.ErrorFrame{Code: code, Message: reason})
	if c.mode.Load() != modeJSON {
		return frame
	}
	return c.ch.jsonError(code, reason)
}

// jsonReadLoop reads a JSON client's messages, each a JSON object ended by
// a NUL byte, and hands each to the channel as a frame.
func (c *Conn) jsonReadLoop(br *bufio.Reader) {
	if c.graceJSON {
		// Taken for a listener because it was silent; a framed Hello
		// now means a client slower than the grace, not a JSON one.
		if first, err := br.Peek(1); err == nil && first[0] <= wire.MaxFrameLimit>>24 {
			c.finish(slog.LevelWarn, wire.CodeProtocol, fmt.Sprintf(
				"a framed hello arrived after the connection had been silent for the JSON grace of %v and was taken for a JSON client", c.ch.cfg.JSONGrace), errorGrace)
			return
		}
	}
	var buf []byte
	for {
		text, err := wire.ReadJSONText(br, c.ch.maxFrame(), buf[:0])
		if err != nil {
			c.readFailed(err)
			return
		}
		if cap(text) <= 64<<10 {
			buf = text // reuse it, unless a large message made it large
		}
		c.framesIn.Add(1)
		c.bytesIn.Add(uint64(len(text) + 1))
		if len(text) == 0 {
			continue // an empty message: nothing between two NULs
		}
		ev, err := wire.DecodeJSON(text)
		if err != nil {
			c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
			return
		}
		if ev.Channel != "" && ev.Channel != c.ch.cfg.Name {
			c.finish(slog.LevelWarn, wire.CodeProtocol, fmt.Sprintf("message names channel %s on the socket of channel %q", wire.Clip(ev.Channel, 40), c.ch.cfg.Name), errorGrace)
			return
		}
		frame := wire.AppendJSONFrame(nil, &ev, c.ch.cfg.Node, c.hello.ClientID, c.ch.cfg.Name)
		if n := len(frame) - wire.HeaderLen; n > c.ch.maxFrame() {
			c.ch.tooBig.Add(1)
			c.finish(slog.LevelWarn, wire.CodeFrameTooBig, fmt.Sprintf("message is %d bytes as a frame, the limit (maxframe) is %d", n, c.ch.maxFrame()), errorGrace)
			return
		}
		hdr, err := wire.ParseEvent(frame[wire.HeaderLen:])
		if err != nil { // a bug in the translation, not the client's fault
			c.finish(slog.LevelError, wire.CodeProtocol, "translating the message: "+err.Error(), errorGrace)
			return
		}
		c.received.reset(frame, nil) // the frame is the garbage collector's
		c.received.Header = hdr
		c.received.src = c
		c.ch.handle(c, &c.received)
		hold := c.received.hold
		c.received.reset(nil, nil)
		if hold != nil {
			hold.awaitDrain(c, 0) // as the framed read loop does
		}
	}
}
