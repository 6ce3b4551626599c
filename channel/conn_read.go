package channel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"

	"github.com/netcluster/netcluster/internal/wire"
)

// Read buffers. A connection starts with a small one, enough for a
// hello and an event or two (a larger frame is read past it, straight
// into its own buffer), and moves to a large one, which parses many
// frames per read, once it has sent growAfter events: ten thousand idle
// clients then cost half a KiB of buffer each, not 32. A JSON client
// reads through a buffer of jsonReadBuffer, as its messages are not
// read past the buffer but copied out of it piece by piece.
const (
	firstReadBuffer = 512
	readBuffer      = 32 << 10
	growAfter       = 16
	jsonReadBuffer  = 4 << 10
)

// readLoop reads the framed client's frames and hands each to
// handleFrame, until the client leaves, breaks the protocol or the
// channel stops reading.
func (c *Conn) readLoop(br *bufio.Reader) {
	fr := wire.NewFrameReader(br, c.ch.maxFrame())
	getBuf := func(size int) []byte { // made once: a closure per frame would allocate
		if c.readBuf = getFrameBuf(size); c.readBuf == nil {
			return nil
		}
		return c.readBuf.b
	}
	var readAt int64 // monoNow after the read that brought the last frame; 0: read the clock
	for {
		// framesIn counts events, not the pings and pongs of an idle
		// client, which need no large buffer. The large buffer reads
		// through the small one, which hands it what it holds, and
		// then, empty, lets each read go to the socket directly.
		if br.Size() < readBuffer && c.framesIn.Load() >= growAfter {
			br = bufio.NewReaderSize(br, readBuffer)
			fr = wire.NewFrameReader(br, c.ch.maxFrame())
		}
		fr.SetMax(c.ch.maxFrame())
		c.readBuf = nil
		buffered := br.Buffered()
		frame, err := fr.ReadFrameWith(getBuf)
		if len(frame) > buffered || readAt == 0 {
			readAt = monoNow() // the frame was not all buffered: a read returned just now
		}
		ref := c.readBuf
		c.readBuf = nil
		if err == nil && ref != nil && &frame[0] != &ref.b[0] {
			// The reader allocated after all; the buffer is unused.
			ref.settle(0)
			ref = nil
		}
		if err == nil && len(frame)-wire.HeaderLen > c.ch.maxFrame() {
			// SetLimits lowered the limit while the read was waiting.
			err = fmt.Errorf("%w: %d bytes, the limit is %d", wire.ErrFrameTooBig, len(frame)-wire.HeaderLen, c.ch.maxFrame())
		}
		if err != nil {
			if ref != nil {
				ref.settle(0)
			}
			c.readFailed(err)
			return
		}
		// The read loop's reference is dropped once the frame has been
		// handled; the queues that took it hold their own.
		c.received.reset(frame, ref)
		c.received.src, c.received.at = c, readAt
		ok := c.handleFrame(&c.received)
		if ref != nil {
			ref.settle(c.received.taken)
		}
		hold := c.received.hold
		c.received.reset(nil, nil)
		if !ok {
			return
		}
		if hold != nil {
			// A receiver is past its high-water mark: read nothing
			// more from this client until it drains (flow.go).
			hold.awaitDrain(c, 0)
			readAt = 0 // what is buffered enters the channel only now
		}
	}
}

// handleFrame checks the frame the client sent, which e holds, parses
// its header into e and hands e to the channel. It reports false when
// the connection must stop reading.
func (c *Conn) handleFrame(e *Event) bool {
	frame := e.frame
	body := frame[wire.HeaderLen:]
	t, err := wire.TypeOf(body)
	if err == nil && (t == wire.FramePing || t == wire.FramePong) && c.version >= wire.PingVersion {
		return c.handlePing(t, body)
	}
	if err == nil && t == wire.FrameDrain && c.version >= wire.ResumeVersion {
		return c.drainAnswered(body)
	}
	if err == nil && t == wire.FrameInterest && c.version >= wire.InterestVersion {
		return c.interestChanged(body)
	}
	c.framesIn.Add(1)
	c.bytesIn.Add(uint64(len(frame)))
	if err != nil || t != wire.FrameEvent {
		reason := fmt.Sprintf("unexpected %v frame", t)
		if err != nil {
			reason = err.Error()
		}
		c.finish(slog.LevelWarn, wire.CodeProtocol, reason, errorGrace)
		return false
	}
	e.Header, err = wire.ParseEvent(body)
	if err != nil {
		c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
		return false
	}
	if reason := c.checkEvent(&e.Header); reason != "" {
		c.finish(slog.LevelWarn, wire.CodeProtocol, reason, errorGrace)
		return false
	}
	c.ch.handle(c, e)
	return true
}

// checkEvent makes sure an event says truthfully where it comes from.
func (c *Conn) checkEvent(ev *wire.EventHeader) string {
	switch {
	case string(ev.Channel) != c.ch.cfg.Name:
		return fmt.Sprintf("event names channel %s on the socket of channel %q", wire.Clip(string(ev.Channel), 64), c.ch.cfg.Name)
	case ev.Sender != c.hello.ClientID:
		return "event's sender is not the id the client gave in its hello"
	case ev.Origin != c.ch.cfg.Node:
		return "event's origin is not this server's node id"
	case wire.CheckEventIDs(ev) != nil:
		// The sender is the client's id, never zero (the handshake
		// refuses it): the id is. The servers drop an event whose id
		// they delivered already: after the first, events of the zero
		// id would be lost across the network.
		return "event's id is zero: each event needs an id of its own"
	}
	if err := wire.CheckEventName(ev.Event); err != nil {
		return err.Error()
	}
	return ""
}

// readFailed ends the read loop on err: quietly when the client left,
// with an error frame when it broke the protocol.
func (c *Conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		// ECONNRESET: the client closed with frames from us still
		// unread in its socket, which is a normal way to leave.
		c.logger().Debug("client left")
		c.kill(slog.LevelDebug, "")
	case errors.Is(err, net.ErrClosed):
		// killed: the reason is logged already
	case errors.As(err, &ne) && ne.Timeout() && c.ch.stopping.Load():
		// the channel stopped reading; the writer drains the queue
	case errors.Is(err, wire.ErrFrameTooBig):
		c.ch.tooBig.Add(1)
		c.finish(slog.LevelWarn, wire.CodeFrameTooBig, err.Error()+" (maxframe)", errorGrace)
	case errors.Is(err, wire.ErrBadFrame):
		c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.kill(slog.LevelWarn, "connection ended inside a frame")
	default:
		c.kill(slog.LevelWarn, "read error: "+err.Error())
	}
}
