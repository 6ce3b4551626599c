package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// Send queues a frame (length prefix included) for the client. The frame
// is handed over: shared, never modified. A client of the JSON text
// protocol gets the frame's JSON form instead, made for it alone; fanning
// one event out to many clients, use Channel.SendEvent, which makes it
// once. A client whose queue would pass the channel's maxpending is
// disconnected as a slow consumer, so that it cannot stall anyone else.
// Send reports whether the frame was queued.
func (c *Conn) Send(frame []byte) bool {
	e := NewEvent(frame)
	return c.push(&e)
}

// SendEvent is Send for an Event, such as the one a Handler receives:
// the queue takes its own reference to a pooled frame.
func (c *Conn) SendEvent(e *Event) bool { return c.push(e) }

// push queues e for the client in the form its protocol needs.
func (c *Conn) push(e *Event) bool { return c.pushFiltered(e, false, nil) }

// pushFiltered is push for the fan-out, which, when filtered is set,
// has let e through by the client's filter seen (nil: none). A filter
// is swapped under c.mu: if it has changed since, e is decided again
// here, so that an event queued behind an Applied frame went through
// that declaration (interest.go).
func (c *Conn) pushFiltered(e *Event, filtered bool, seen *filter) bool {
	frame, ref, slab := e.frame, e.ref, e.slab
	c.mu.Lock()
	if filtered && c.refiltered(e, seen) {
		c.mu.Unlock()
		return false
	}
	switch c.mode.Load() {
	case modeBinary:
	case modeUndecided:
		slab = nil // filterHeld reads the queue's entries as one frame each
	case modeJSON:
		// The mode never changes again once JSON, so the text can be
		// made outside the lock.
		c.mu.Unlock()
		text, ok := e.text(c.ch)
		if !ok {
			c.drop(1)
			return false
		}
		frame, ref, slab = text, nil, nil
		c.mu.Lock()
	}
	if c.closeAfter || c.isDead() {
		lost := c.entryEvents(frame, 0)
		c.mu.Unlock()
		c.drop(lost)
		return false
	}
	cost := entryCost(frame, ref)
	lim := c.ch.limits.Load()
	// An empty queue takes any frame within the limit, so that the
	// rounding of pooled buffers never refuses a lone large frame that
	// maxpending allows; for a JSON client, the frame's text, which may
	// be several times longer (base64, escapes), when the frame itself
	// is within the limit.
	if limit := lim.maxPending; c.pending+cost > limit && (c.pending > 0 || len(e.frame) > limit) {
		c.overflowLocked(frame, cost, limit)
		return false
	}
	if ref != nil {
		e.taken++ // the reader adds the references up once the Handler returns (frameBuf.settle)
	}
	extra := c.queue.addIn(frame, slab, e.slabCap, ref, cost)
	before := c.pending
	c.pending += cost + extra
	if lim.block && c.pending > lim.high {
		// Past the high-water mark: the sender is to wait (flow.go).
		if before <= lim.high {
			c.overSince.Store(monoNow())
		}
		if e.src != c && e.hold == nil {
			e.hold = c
		}
	}
	c.mu.Unlock()
	// Count before the writer can run, so that a client holding the
	// frame sees it counted.
	if !e.control {
		c.ch.framesOut.Add(1)
		c.ch.bytesOut.Add(uint64(len(frame)))
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// overflowLocked drops the client, whose queue frame, of cost, would
// take past limit (maxpending), as a slow consumer; c.mu is held, and
// released.
func (c *Conn) overflowLocked(frame []byte, cost, limit int) {
	pending := c.pending
	// What waits in the queue is dropped at once (the writer holds
	// only the batch it is writing), so that the error frame comes
	// right after what the client has been sent: it tells the
	// client why, if it reads again within errorGrace.
	decided := c.mode.Load() != modeUndecided
	dropped := c.entryEvents(frame, 0)
	if decided {
		dropped += c.unsentEvents(c.queue.frames, 0)
		c.pending -= c.queue.cost
		c.queue.release()
	}
	c.mu.Unlock()
	c.drop(dropped)
	c.ch.slow.Add(1)
	// The error frame's code says "slow consumer"; its message does
	// not repeat it.
	reason := fmt.Sprintf("%d bytes pending, limit (maxpending) %d", pending+cost, limit)
	if decided {
		c.finish(slog.LevelWarn, wire.CodeSlowConsumer, reason, errorGrace)
	} else {
		c.kill(slog.LevelWarn, wire.CodeSlowConsumer.String()+": "+reason) // no protocol to say it in yet
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
					c.lastWordsOut()
					return
				}
				break
			}
			batch := c.queue
			c.queue = c.spare
			c.queue.follow(&batch)
			c.spare = sendQueue{}
			c.mu.Unlock()

			err := c.writeBatch(&batch)
			c.mu.Lock()
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

// lastWordsOut ends the writer once a finishing client's last frames
// are out. Its socket may still hold events it sent before it heard why
// it is closed (a slow consumer, a ping timeout): they are handled as
// any it sent before, or it would take them for delivered. So only the
// writing half closes, and the client reads the end of the stream after
// the error frame; the read loop reads on up to the client's own close,
// after which serve closes the socket, or for errorGrace at most
// (readOnOrClose). A read loop that has ended already (a protocol error,
// the channel stopping) is not waited for: serve closes the socket at
// once.
func (c *Conn) lastWordsOut() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		c.kill(slog.LevelDebug, "")
		return
	}
	c.readOnOrClose(time.Now(), errorGrace)
}

// maxReadOn bounds how long a finished client's read loop reads on while
// the server, not the client, keeps it from reaching the client's close.
const maxReadOn = 30 * time.Second

// readOnOrClose closes the socket of a finished client after wait,
// unless its read loop is not waiting for the client then: the Handler
// holds it (a link's flow control), or it waits for a client past its
// high-water mark, or it is busy with what it read. What the client sent
// is then read on, and the socket closed only once the read loop waits
// for the client, or maxReadOn after its error frame went out.
func (c *Conn) readOnOrClose(since time.Time, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.graceTimer != nil {
		c.graceTimer.Stop()
	}
	c.graceTimer = time.AfterFunc(wait, func() {
		select {
		case <-c.readDone:
			return // serve closes the socket
		case <-c.dead:
			return
		default:
		}
		if !c.inRead.Load() && time.Since(since) < maxReadOn {
			c.readOnOrClose(since, recheckReadOn)
			return
		}
		c.kill(slog.LevelWarn, fmt.Sprintf("the client did not close its end within %v of its error frame; what it sent since is not read",
			time.Since(since).Round(time.Millisecond)))
	})
}

// recheckReadOn is how often readOnOrClose looks again at a read loop
// that the server holds.
const recheckReadOn = 50 * time.Millisecond

// writeBatch writes a batch taken from the queue, in chunks
// (writeChunkFrames, writeChunkBytes): after each, what it cost leaves
// pending, its buffers go back, and the readers held for the client are
// let go once the queue is under its low-water mark. The batch is
// released on return, written or never to be.
func (c *Conn) writeBatch(batch *sendQueue) error {
	var err error
	left := batch.cost // what the batch still counts in pending
	frames, refs := batch.frames, batch.refs
	for len(frames) > 0 && err == nil {
		n, size, cost := 0, 0, 0
		for n < len(frames) && n < writeChunkFrames && (n == 0 || size+len(frames[n]) <= writeChunkBytes) {
			size += len(frames[n])
			cost += entryCost(frames[n], refs[n])
			n++
		}
		// WriteTo consumes the entries of wbufs: wsent keeps them as
		// they were, to tell what a failed write left unsent.
		c.wsent = append(c.wsent[:0], frames[:n]...)
		c.wbufs = frames[:n:n]
		var wrote int64
		wrote, err = c.writeBuffers()
		c.wbufs = nil
		if err != nil {
			// The client gets neither the frames the write cut short
			// nor any after them.
			c.mu.Lock()
			lost := c.unsentEvents(c.wsent, wrote) + c.unsentEvents(frames[n:], 0)
			c.mu.Unlock()
			c.drop(lost)
		}
		clear(c.wsent)
		c.framesOut.Add(uint64(n))
		c.bytesOut.Add(uint64(size))
		if err == nil {
			c.tookAt.Store(monoNow())
		}
		for i, ref := range refs[:n] {
			if ref != nil {
				ref.release()
				refs[i] = nil
			}
		}
		frames, refs = frames[n:], refs[n:]
		if len(frames) == 0 && err == nil {
			c.framesOut.Add(uint64(batch.merged)) // the frames that joined an entry
		}
		cost = min(cost, left)
		left -= cost
		c.mu.Lock()
		c.pending -= cost
		if c.pending <= c.ch.limits.Load().low {
			c.wakeHeldLocked()
		}
		c.mu.Unlock()
	}
	batch.release() // what an error left unwritten, counted as dropped above
	c.mu.Lock()
	c.pending -= left
	if err != nil || c.pending <= c.ch.limits.Load().low {
		c.wakeHeldLocked()
	}
	c.mu.Unlock()
	return err
}

// writeBuffers writes c.wbufs, consuming them, and returns how many
// bytes it wrote. A write into a full socket goes on only as the client
// reads the socket's buffer well down, so a chunk can take a client
// that reads slowly but steadily longer than the stall timeout. The
// write runs under a deadline of a quarter of the stall timeout, to
// record (tookAt) each time some of it went out: checkStall then takes
// the client for one that reads. The deadline is set again only once
// half of it has passed, so a stream of small writes does not move a
// timer each.
func (c *Conn) writeBuffers() (int64, error) {
	step := max(c.ch.limits.Load().stall/4, time.Millisecond)
	var total int64
	for {
		if now := monoNow(); c.wdeadline == 0 || now-c.wdeadline >= int64(step/2) {
			c.nc.SetWriteDeadline(time.Now().Add(step))
			c.wdeadline = now
		}
		n, err := c.wbufs.WriteTo(c.nc)
		total += n
		if !errors.Is(err, os.ErrDeadlineExceeded) || len(c.wbufs) == 0 || c.isDead() {
			return total, err
		}
		c.wdeadline = 0 // passed: set it again
		if n > 0 {
			c.tookAt.Store(monoNow())
		}
	}
}

// drop counts n events meant for the client that it is never sent, for
// the client (ClientInfo.Dropped) and for the channel (Stats.Dropped),
// whether the client has left the channel yet or not.
func (c *Conn) drop(n uint64) {
	if n > 0 {
		c.dropped.Add(n)
		c.ch.dropped.Add(n)
	}
}

// unsentEvents counts the events among frames, entries of the client's
// queue, that the client is not sent whole when only the first wrote
// bytes of them are written (0: none). The protocol's own frames
// (Welcome, Error, Ping, Pong, Drain, Applied; a JSON client's error
// message) are not events, and not counted. c.mu is held.
func (c *Conn) unsentEvents(frames [][]byte, wrote int64) uint64 {
	n := uint64(0)
	for _, b := range frames {
		n += c.entryEvents(b, wrote)
		wrote = max(0, wrote-int64(len(b)))
	}
	return n
}

// entryEvents is unsentEvents for one entry, which holds one frame, or
// for a binary client several, one after the other (sendQueue).
func (c *Conn) entryEvents(b []byte, wrote int64) uint64 {
	if c.mode.Load() == modeJSON {
		// One text, an event unless it is the error message.
		if int64(len(b)) <= wrote || len(b) == 0 || len(c.lastWords) > 0 && &b[0] == &c.lastWords[0] {
			return 0
		}
		return 1
	}
	n := uint64(0)
	for len(b) >= wire.HeaderLen {
		size := min(len(b), wire.HeaderLen+int(binary.BigEndian.Uint32(b)))
		if int64(size) > wrote {
			if ty, err := wire.TypeOf(b[wire.HeaderLen:size]); err == nil && ty == wire.FrameEvent {
				n++
			}
		}
		wrote = max(0, wrote-int64(size))
		b = b[size:]
	}
	return n
}
