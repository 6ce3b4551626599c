package channel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
)

// handshake finds out which protocol the client speaks and, for the
// framed one, reads its Hello and queues the Welcome ahead of the events
// held meanwhile. It returns the connection's mode, or modeUndecided
// when the connection must close.
func (c *Conn) handshake(br *bufio.Reader) uint32 {
	c.setReadDeadline(c.since.Add(c.ch.cfg.JSONGrace))
	first, err := br.Peek(1)
	var ne net.Error
	switch {
	case err == nil && first[0] == '{':
		c.setReadDeadline(time.Time{})
		c.becomeJSON(false)
		return modeJSON
	case err == nil:
	case errors.As(err, &ne) && ne.Timeout() && !c.ch.stopping.Load():
		// Silent past the grace: an original agent that only listens.
		c.setReadDeadline(time.Time{})
		c.becomeJSON(true)
		return modeJSON
	default:
		c.handshakeFailed(err)
		return modeUndecided
	}
	return c.helloWelcome(br)
}

// helloWelcome is the handshake of the framed protocol: it reads the
// client's Hello and queues the Welcome ahead of the events held
// meanwhile. It returns modeBinary, or modeUndecided when the connection
// must close.
func (c *Conn) helloWelcome(br *bufio.Reader) uint32 {
	c.setReadDeadline(c.since.Add(c.ch.cfg.HandshakeTimeout))
	fr := wire.NewFrameReader(br, min(c.ch.maxFrame(), 64<<10))
	frame, err := fr.ReadFrame()
	if err != nil {
		c.handshakeFailed(err)
		return modeUndecided
	}
	body := frame[wire.HeaderLen:]
	if t, err := wire.TypeOf(body); err != nil || t != wire.FrameHello {
		reason := fmt.Sprintf("the first frame must be a hello, got %v", t)
		if err != nil {
			reason = "hello: " + err.Error()
		}
		c.sendFinal(wire.CodeProtocol, reason)
		return modeUndecided
	}
	h, err := wire.DecodeHello(body)
	if err != nil {
		c.sendFinal(wire.CodeProtocol, "bad hello: "+err.Error())
		return modeUndecided
	}
	if h.ClientID == [16]byte{} {
		// Replies are addressed by client id, and a zero to is no
		// address; the events the client emitted would carry the zero
		// sender, which other servers refuse (wire.CheckEventIDs).
		c.sendFinal(wire.CodeProtocol, "bad hello: the client id is zero: each connection needs an id of its own")
		return modeUndecided
	}
	if h.Version < 1 {
		c.sendFinal(wire.CodeVersion, fmt.Sprintf("protocol version %d is not served; this server speaks 1 to %d", h.Version, wire.ProtocolVersion))
		return modeUndecided
	}
	h.Name = wire.Cut(h.Name, maxName)
	version := min(h.Version, wire.ProtocolVersion)
	f, err := interestOf(&h, version)
	if err != nil {
		c.sendFinal(wire.CodeProtocol, "hello: "+err.Error())
		return modeUndecided
	}
	if !c.awaitEarlier(br, h.Own) {
		return modeUndecided
	}
	c.setReadDeadline(time.Time{})
	w := wire.Welcome{
		Version:  version,
		Node:     c.ch.cfg.Node,
		Channel:  c.ch.cfg.Name,
		MaxFrame: uint64(c.ch.maxFrame()),
		PID:      uint64(os.Getpid()),
	}
	c.log.Store(c.logger().With("client", h.Name, "pid", h.PID))
	if !c.ch.register(c, h.ClientID) {
		c.sendFinal(wire.CodeHandshake, fmt.Sprintf("client id %v is in use by another client of this channel", uuid.UUID(h.ClientID)))
		return modeUndecided
	}
	rp := c.resumeWelcome(&h, &w, f)
	welcome := wire.AppendWelcome(nil, &w)
	c.mu.Lock()
	c.hello = h
	c.version = w.Version
	c.setInterest(f) // after hello: wants reads the id
	held, filtered := filterHeld(c.queue, f, h.ClientID)
	c.pending -= c.queue.cost - held.cost
	c.queue = sendQueue{}
	c.queue.add(welcome, nil, entryCost(welcome, nil))
	c.pending += entryCost(welcome, nil)
	for i, f := range rp.frames {
		c.queue.add(f, rp.refs[i], entryCost(f, rp.refs[i]))
		c.pending += entryCost(f, rp.refs[i])
	}
	c.queue.frames = append(c.queue.frames, held.frames...)
	c.queue.refs = append(c.queue.refs, held.refs...)
	c.queue.cost += held.cost
	c.mode.Store(modeBinary)
	c.mu.Unlock()
	c.ch.filtered.Add(filtered)
	c.drainIfStopping()
	c.poke()
	c.logger().Debug("client connected", "id", uuid.UUID(h.ClientID))
	return modeBinary
}

// setReadDeadline sets the read deadline, unless the channel has stopped
// reading: Quiesce may have set its own deadline while the handshake
// ran, and this must not clear it, or the read would keep Quiesce waiting
// for as long as the client stays.
func (c *Conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	if c.ch.stopping.Load() {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// maxName is how much of a client's name the server keeps: the name goes
// on every log line of the connection.
const maxName = 128

func (c *Conn) handshakeFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		// A server checking whether the socket is alive, or a client
		// that gave up: nothing to say.
	case errors.As(err, &ne) && ne.Timeout() && !c.ch.stopping.Load():
		c.sendFinal(wire.CodeHandshake, fmt.Sprintf("no hello within %v", c.ch.cfg.HandshakeTimeout))
	case errors.Is(err, wire.ErrFrameTooBig):
		c.sendFinal(wire.CodeFrameTooBig, "hello: "+err.Error())
	case errors.Is(err, wire.ErrBadFrame), errors.Is(err, io.ErrUnexpectedEOF):
		c.sendFinal(wire.CodeProtocol, "hello: "+err.Error())
	}
}

// sendFinal writes an error frame straight to the socket, for use before
// the writer runs, and logs the reason.
func (c *Conn) sendFinal(code wire.ErrorCode, reason string) {
	c.logger().Warn("closing client", "reason", reason)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(wire.AppendError(nil, &wire.ErrorFrame{Code: code, Message: reason}))
}

// earlierWait bounds how long a new connection waits for the client's
// earlier ones (awaitEarlier): as long as a dropped client's socket is
// read on, and a little more.
const earlierWait = maxReadOn + errorGrace

// awaitEarlier waits until the read loop of each earlier connection of
// the client (own, from its Hello) that is still on the channel has
// ended, so that every event the client sent on them enters the channel
// before any it sends on this one: its order holds across a
// reconnection. A dropped client's socket is read to its end
// (lastWordsOut), which takes a while when the server holds that reader.
// An earlier connection still read after earlierWait is closed, and
// what its socket still held is lost. Meanwhile this connection counts
// as waiting on the earlier one (flow.go): that reader is never held
// for the events it queues here. It reports false when the channel
// stops reading, this connection dies, or its client leaves (leftWhile):
// a client whose handshake times out tries again, and the attempts it
// gave up must not wait on.
func (c *Conn) awaitEarlier(br *bufio.Reader, own [][16]byte) bool {
	deadline := time.Now().Add(earlierWait)
	var left <-chan struct{}
	defer c.waitingOn.Store(nil)
	for _, id := range own {
		old := c.ch.Client(id)
		if old == nil || old == c {
			continue
		}
		if left == nil {
			var stop func()
			left, stop = c.leftWhile(br)
			defer stop()
		}
		c.waitingOn.Store(old)
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-old.readDone:
		case <-t.C:
			old.kill(slog.LevelWarn, fmt.Sprintf("the client connected again, and this earlier connection was still read %v later: what it still held is lost", earlierWait))
		case <-c.ch.liveStop:
			t.Stop()
			return false
		case <-c.dead:
			t.Stop()
			return false
		case <-left:
			t.Stop()
			return false
		}
		t.Stop()
	}
	return true
}

// leftWhile watches, until stop, for the client to close its end
// while the server reads nothing from it: left is closed when it has.
// It peeks at br, which keeps what it reads for the read loop; stop
// cuts the peek short with a read deadline in the past, and returns
// once it has ended: the caller then sets the deadline it needs.
func (c *Conn) leftWhile(br *bufio.Reader) (left <-chan struct{}, stop func()) {
	gone := make(chan struct{})
	done := make(chan struct{})
	c.setReadDeadline(time.Time{})
	go func() {
		defer close(done)
		var ne net.Error
		if _, err := br.Peek(1); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			close(gone)
		}
	}()
	return gone, func() {
		c.nc.SetReadDeadline(time.Unix(1, 0))
		<-done
	}
}
