package channel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
)

// errorGrace is how long a client that broke the protocol has to read
// the error frame that says so.
const errorGrace = time.Second

// Cred is what the kernel says about the process at the other end of a
// connection.
type Cred struct{ PID, UID, GID int }

// Conn is one client connection of a channel. It reads the client's
// frames on one goroutine and writes to it from a bounded queue on
// another.
type Conn struct {
	ch    *Channel
	id    uint64
	nc    net.Conn
	logp  atomic.Pointer[slog.Logger]
	since time.Time
	cred  Cred
	hasCr bool
	hello wire.Hello // set by the handshake, before mode leaves modeUndecided

	// mode is modeUndecided until the first byte or the JSON grace says
	// which protocol the client speaks. It changes once, under mu, and
	// can be read without it.
	mode atomic.Uint32

	ev   wire.EventHeader // the event being handled; only the read loop uses it
	in   Outbound         // the frame being handled; only the read loop uses it
	next *frameBuf        // the buffer getBuf gave the frame being read

	removed atomic.Bool // left the channel's client list; readers skip it

	mu         sync.Mutex
	queue      sendQueue   // frames waiting for the writer
	spare      sendQueue   // the arrays of the last batch written, for reuse
	wbufs      net.Buffers // what WriteTo consumes, a field so as not to escape per write; writer only
	pending    int         // what the queued frames cost, being written or not (entryCost)
	closeAfter bool        // close once the queue is written
	graceTimer *time.Timer // closes a finishing client that does not read
	wake       chan struct{}
	dead       chan struct{} // closed when the socket is closed
	killOnce   sync.Once

	graceJSON bool // taken for JSON because it stayed silent; read loop only

	// version is the protocol version the handshake settled on; set
	// before mode becomes modeBinary, so a reader that loads mode first
	// may read it.
	version uint64
	pings   atomic.Uint64 // pings and pongs received from the client
	live    liveness      // the liveness check's; only its goroutine uses it

	framesIn, bytesIn   atomic.Uint64
	framesOut, bytesOut atomic.Uint64
	dropped             atomic.Uint64
}

// ClientInfo describes a connection for the control channel.
type ClientInfo struct {
	Conn      uint64    // the channel's number for the connection
	ID        uuid.UUID // the client's id from its handshake
	Name      string    // the client's name from its handshake
	PID       int       // from the socket's peer credentials; 0 if unknown
	UID       int       // from the socket's peer credentials; -1 if unknown
	Since     time.Time // when it connected
	FramesIn  uint64    // events received from it
	BytesIn   uint64
	FramesOut uint64 // frames written to it
	BytesOut  uint64
	Pending   int    // what is queued for it now, in bytes: the buffers and their bookkeeping, which maxpending bounds
	Dropped   uint64 // frames not delivered to it because it was closing
	HelloPID  uint64 // the process id the client gave in its hello
	// Protocol is "binary" for the framed protocol, "json" for the JSON
	// text protocol (PROTOCOL.md § 10).
	Protocol string
}

// Channel is the channel the connection belongs to.
func (c *Conn) Channel() *Channel { return c.ch }

// ID is the client's id: from its Hello, or for a JSON client one the
// server chose (PROTOCOL.md § 10.6). It is set once the protocol is known,
// which is before the connection's first event reaches the Handler.
func (c *Conn) ID() uuid.UUID { return c.hello.ClientID }

// Info returns the connection's identity and counters.
func (c *Conn) Info() ClientInfo {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	ci := ClientInfo{
		Conn: c.id, ID: c.hello.ClientID, Name: c.hello.Name, UID: -1, Since: c.since,
		FramesIn: c.framesIn.Load(), BytesIn: c.bytesIn.Load(),
		FramesOut: c.framesOut.Load(), BytesOut: c.bytesOut.Load(), Pending: pending,
		Dropped: c.dropped.Load(), HelloPID: c.hello.PID,
		Protocol: "binary",
	}
	if c.mode.Load() == modeJSON {
		ci.Protocol = "json"
	}
	if c.hasCr {
		ci.PID, ci.UID = c.cred.PID, c.cred.UID
	}
	return ci
}

// Send queues a frame (length prefix included) for the client. The frame
// is handed over: shared, never modified. A client of the JSON text
// protocol gets the frame's JSON form instead, made for it alone; fanning
// one event out to many clients, use Channel.SendOutbound, which makes it
// once. A client
// whose queue would pass the channel's maxpending is disconnected as a
// slow consumer, so that it cannot stall anyone else. Send reports
// whether the frame was queued.
func (c *Conn) Send(frame []byte) bool {
	o := NewOutbound(frame)
	return c.push(&o)
}

// SendOutbound is Send for an Outbound, such as the one a Handler
// receives: the queue takes its own reference to a pooled frame.
func (c *Conn) SendOutbound(o *Outbound) bool { return c.push(o) }

// push queues o for the client in the form its protocol needs.
func (c *Conn) push(o *Outbound) bool {
	frame, ref := o.frame, o.ref
	c.mu.Lock()
	if c.mode.Load() == modeJSON {
		// The mode never changes again once JSON, so the text can be
		// made outside the lock.
		c.mu.Unlock()
		text, ok := o.text(c.ch)
		if !ok {
			c.dropped.Add(1)
			return false
		}
		frame, ref = text, nil
		c.mu.Lock()
	}
	if c.closeAfter || c.isDead() {
		c.mu.Unlock()
		c.dropped.Add(1)
		return false
	}
	cost := entryCost(frame, ref)
	// An empty queue takes any frame within the limit, so that the
	// rounding of pooled buffers never refuses a lone large frame that
	// maxpending allows.
	if limit := c.ch.maxPending(); c.pending+cost > limit && (c.pending > 0 || len(frame) > limit) {
		pending := c.pending
		// What waits in the queue is dropped at once (the writer holds
		// only the batch it is writing), so that the error frame comes
		// right after what the client has been sent: it tells the
		// client why, if it reads again within errorGrace.
		decided := c.mode.Load() != modeUndecided
		dropped := uint64(1)
		if decided {
			dropped += uint64(len(c.queue.frames))
			c.pending -= c.queue.cost
			c.queue.release()
		}
		c.mu.Unlock()
		c.dropped.Add(dropped)
		c.ch.slow.Add(1)
		// The error frame's code says "slow consumer"; its message does
		// not repeat it.
		reason := fmt.Sprintf("%d bytes pending, limit (maxpending) %d", pending+cost, limit)
		if decided {
			c.finish(slog.LevelWarn, wire.CodeSlowConsumer, reason, errorGrace)
		} else {
			c.kill(slog.LevelWarn, wire.CodeSlowConsumer.String()+": "+reason) // no protocol to say it in yet
		}
		return false
	}
	if ref != nil {
		o.taken++ // the reader adds the references up once the Handler returns (frameBuf.settle)
	}
	c.queue.add(frame, ref, cost)
	c.pending += cost
	c.mu.Unlock()
	// Count before the writer can run, so that a client holding the
	// frame sees it counted.
	c.ch.framesOut.Add(1)
	c.ch.bytesOut.Add(uint64(len(frame)))
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

func (c *Conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// kill closes the socket now, dropping whatever is queued.
func (c *Conn) kill(level slog.Level, reason string) {
	c.killOnce.Do(func() {
		if reason != "" {
			c.logger().Log(context.Background(), level, "closing client", "reason", reason)
		}
		close(c.dead)
		c.nc.Close()
	})
}

// peerClosed stops the writer of a client that has closed its end of
// the socket (a write failed with err): the events it sent before it
// closed may still wait, unread, on ours, and must be handled as any
// others. What is queued for it is dropped, and so is whatever comes
// for it later; the reader goes on to the end of what the client sent
// and closes the connection there (readFailed), or after errorGrace if
// the end does not come.
func (c *Conn) peerClosed(err error) {
	c.mu.Lock()
	c.closeAfter = true // enqueue drops from now on
	dropped := len(c.queue.frames)
	c.pending -= c.queue.cost
	c.queue.release()
	t := time.AfterFunc(errorGrace, func() {
		c.kill(slog.LevelDebug, "client closed its end and sent nothing more: "+err.Error())
	})
	c.graceTimer = t
	c.mu.Unlock()
	c.dropped.Add(uint64(dropped))
}

// finish queues an error frame as the last thing the client hears, and
// closes the connection once it is written, or after grace (when not 0)
// if the client does not read.
func (c *Conn) finish(level slog.Level, code wire.ErrorCode, reason string, grace time.Duration) {
	c.logger().Log(context.Background(), level, "closing client", "code", code.String(), "reason", reason)
	c.mu.Lock()
	frame := c.errorMessage(code, reason)
	if c.closeAfter || c.isDead() {
		c.mu.Unlock()
		return
	}
	cost := entryCost(frame, nil)
	c.queue.add(frame, nil, cost)
	c.pending += cost
	c.closeAfter = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	if grace > 0 {
		t := time.AfterFunc(grace, func() { c.kill(slog.LevelWarn, "client did not read its last frames") })
		c.mu.Lock()
		c.graceTimer = t
		c.mu.Unlock()
	}
}

// serve runs the connection: handshake, then the read loop, until the
// client leaves or the channel stops reading; then it waits for the
// writer.
func (c *Conn) serve() {
	defer c.ch.wg.Done()
	writerDone := make(chan struct{})
	br := bufio.NewReaderSize(c.nc, firstReadBuffer)
	// The connection is among the channel's receivers from its accept on,
	// so events that arrive while its protocol is unknown are held in its
	// queue; the writer starts once the protocol is known.
	if mode := c.handshake(br); mode != modeUndecided {
		go func() {
			defer close(writerDone)
			c.writeLoop()
		}()
		if mode == modeJSON {
			c.jsonReadLoop(br)
		} else {
			c.readLoop(br)
		}
	} else {
		close(writerDone)
		c.kill(slog.LevelDebug, "")
	}
	c.ch.readers.Done()
	<-writerDone
	c.kill(slog.LevelDebug, "")
	c.mu.Lock()
	if c.graceTimer != nil {
		c.graceTimer.Stop()
	}
	// Dead, so push queues nothing more: give back the buffers of what
	// was never written.
	c.queue.release()
	c.queue, c.spare, c.pending = sendQueue{}, sendQueue{}, 0
	c.mu.Unlock()
	c.ch.remove(c)
}

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
	if h.Version < 1 {
		c.sendFinal(wire.CodeVersion, fmt.Sprintf("protocol version %d is not served; this server speaks 1 to %d", h.Version, wire.ProtocolVersion))
		return modeUndecided
	}
	h.Name = wire.Cut(h.Name, maxName)
	c.setReadDeadline(time.Time{})
	w := wire.Welcome{
		Version:  min(h.Version, wire.ProtocolVersion),
		Node:     c.ch.cfg.Node,
		Channel:  c.ch.cfg.Name,
		MaxFrame: uint64(c.ch.maxFrame()),
		PID:      uint64(os.Getpid()),
	}
	welcome := wire.AppendWelcome(nil, &w)
	c.logp.Store(c.logger().With("client", h.Name, "pid", h.PID))
	if !c.ch.register(c, h.ClientID) {
		c.sendFinal(wire.CodeHandshake, fmt.Sprintf("client id %v is in use by another client of this channel", uuid.UUID(h.ClientID)))
		return modeUndecided
	}
	c.mu.Lock()
	c.hello = h
	c.version = w.Version
	held := c.queue
	c.queue = sendQueue{}
	c.queue.add(welcome, nil, entryCost(welcome, nil))
	c.queue.frames = append(c.queue.frames, held.frames...)
	c.queue.refs = append(c.queue.refs, held.refs...)
	c.queue.cost += held.cost
	c.pending += entryCost(welcome, nil)
	c.mode.Store(modeBinary)
	c.mu.Unlock()
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

// poke wakes the writer.
func (c *Conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) logger() *slog.Logger { return c.logp.Load() }

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

// Read buffers. A connection starts with a small one, enough for the
// handshake and a few events, and moves to a large one, which parses
// many frames per read, once it has sent growAfter frames: ten thousand
// idle clients then cost 4 KiB of buffer each, not 32.
const (
	firstReadBuffer = 4 << 10
	readBuffer      = 32 << 10
	growAfter       = 16
)

func (c *Conn) readLoop(br *bufio.Reader) {
	fr := wire.NewFrameReader(br, c.ch.maxFrame())
	getBuf := func(size int) []byte { // made once: a closure per frame would allocate
		if c.next = getFrameBuf(size); c.next == nil {
			return nil
		}
		return c.next.b
	}
	for n := 0; ; n++ {
		if n >= growAfter && br.Size() < readBuffer && br.Buffered() == 0 {
			br = bufio.NewReaderSize(c.nc, readBuffer)
			fr = wire.NewFrameReader(br, c.ch.maxFrame())
		}
		fr.SetMax(c.ch.maxFrame())
		c.next = nil
		frame, err := fr.ReadFrameWith(getBuf)
		ref := c.next
		c.next = nil
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
		c.in.reset(frame, ref)
		ok := c.handleFrame(&c.in)
		if ref != nil {
			ref.settle(c.in.taken)
		}
		c.in.reset(nil, nil)
		if !ok {
			return
		}
	}
}

// handleFrame checks a frame the client sent and hands it to the
// channel. It reports false when the connection must stop reading.
func (c *Conn) handleFrame(in *Outbound) bool {
	frame := in.frame
	body := frame[wire.HeaderLen:]
	t, err := wire.TypeOf(body)
	if err == nil && (t == wire.FramePing || t == wire.FramePong) && c.version >= wire.PingVersion {
		return c.handlePing(t, body)
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
	ev := &c.ev // reused: a Handler must not keep it, and a local would escape
	*ev, err = wire.ParseEvent(body)
	if err != nil {
		c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
		return false
	}
	if reason := c.checkEvent(ev); reason != "" {
		c.finish(slog.LevelWarn, wire.CodeProtocol, reason, errorGrace)
		return false
	}
	c.ch.handle(c, in, ev)
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
	}
	if err := wire.CheckEventName(ev.Event); err != nil {
		return err.Error()
	}
	return ""
}

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

func (c *Conn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.dead:
			return
		}
		for {
			c.mu.Lock()
			if len(c.queue.frames) == 0 {
				closeNow := c.closeAfter
				c.mu.Unlock()
				if closeNow {
					c.kill(slog.LevelDebug, "")
					return
				}
				break
			}
			batch := c.queue
			c.queue = c.spare
			c.spare = sendQueue{}
			c.mu.Unlock()

			size := 0
			for _, f := range batch.frames {
				size += len(f)
			}
			c.wbufs = batch.frames
			_, err := c.wbufs.WriteTo(c.nc)
			c.wbufs = nil
			c.framesOut.Add(uint64(len(batch.frames)))
			c.bytesOut.Add(uint64(size))
			// Written, or never to be: the buffers go back.
			cost := batch.cost
			batch.release()

			c.mu.Lock()
			c.pending -= cost
			if cap(batch.frames) <= 4096 {
				c.spare = batch
			}
			c.mu.Unlock()
			if err != nil {
				c.mu.Lock()
				finishing := c.closeAfter
				c.mu.Unlock()
				left := errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
				if left && !finishing {
					c.peerClosed(err)
					return
				}
				level := slog.LevelInfo
				if finishing || left {
					level = slog.LevelDebug // the client left first
				}
				c.kill(level, "write error: "+err.Error())
				return
			}
		}
	}
}
