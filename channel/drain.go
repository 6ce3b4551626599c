package channel

import (
	"log/slog"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// drainTimeout bounds how long Quiesce waits for the clients that were
// sent a Drain to answer it.
const drainTimeout = 2 * time.Second

// drainFrame is the Drain frame; never modified.
var drainFrame = wire.AppendDrain(nil)

// Drain stops accepting clients, removes the socket file, and asks each
// client of protocol version 3 or later to stop sending (a Drain frame,
// PROTOCOL.md § 4.6). Each one answers with a Drain after the last event
// it wrote, and Quiesce reads up to that answer: so the events a client
// wrote before it heard the server stop are all handled, none left
// unread in the socket. Older clients are cut off by Quiesce, as
// before. A server stopping several channels drains them all before it
// quiesces any, so that their clients answer at the same time.
func (ch *Channel) Drain() {
	ch.stopAccepting()
	ch.drainOnce.Do(func() {
		ch.mu.Lock()
		conns := ch.connsLocked()
		ch.mu.Unlock()
		for _, c := range conns {
			if c.mode.Load() == modeBinary {
				c.sendDrain()
			}
		}
	})
}

// sendDrain sends the client a Drain, once, if it speaks version 3.
func (c *Conn) sendDrain() {
	if c.version >= wire.ResumeVersion && c.drainSent.CompareAndSwap(false, true) && !c.sendFirst(drainFrame) {
		c.drainSent.Store(false) // closing: its reader ends anyway
	}
}

// sendFirst queues frame ahead of everything queued but a Welcome not
// yet written, so that a client with a long queue hears it at once: a
// Drain says nothing about the events, only that the client must stop
// sending, and the sooner it does, the sooner the server stops reading.
// It reports false when the connection is closing.
func (c *Conn) sendFirst(frame []byte) bool {
	cost := entryCost(frame, nil)
	c.mu.Lock()
	if c.closeAfter || c.isDead() {
		c.mu.Unlock()
		return false
	}
	at := 0
	if old := c.queue.frames; len(old) > 0 && wire.FrameType(old[0][wire.HeaderLen+1]) == wire.FrameWelcome {
		at = 1 // a Welcome is a fixarray: its type is the body's second byte
	}
	q := c.queue // the slab it follows too: frame goes in ahead of its run
	q.frames = make([][]byte, 0, len(c.queue.frames)+1)
	q.refs = make([]*frameBuf, 0, len(c.queue.refs)+1)
	q.frames = append(append(append(q.frames, c.queue.frames[:at]...), frame), c.queue.frames[at:]...)
	q.refs = append(append(append(q.refs, c.queue.refs[:at]...), nil), c.queue.refs[at:]...)
	q.cost += cost
	c.queue = q
	c.pending += cost
	c.mu.Unlock()
	c.poke()
	return true
}

// drainIfStopping drains a client whose handshake ended while the
// channel was stopping: Drain may have looked at it before it spoke.
// Its reader, which the handshake has cut off, gets drainTimeout to
// read up to the answer.
func (c *Conn) drainIfStopping() {
	if !c.ch.stopping.Load() {
		return
	}
	c.sendDrain()
	if c.drainSent.Load() {
		c.nc.SetReadDeadline(time.Now().Add(drainTimeout))
	}
}

// stopAccepting stops accepting clients and the liveness check, and
// removes the socket file; once.
func (ch *Channel) stopAccepting() {
	ch.stopOnce.Do(func() {
		ch.mu.Lock()
		ch.stopping.Store(true)
		ch.mu.Unlock()
		ch.ln.Close()
		close(ch.liveStop)
		<-ch.acceptDone
	})
}

// awaitDrained waits, at most drainTimeout, for the read loops of conns
// that were sent a Drain to end: at the client's answer, or because it
// left. A connection still in its handshake may yet be sent one
// (drainIfStopping): it is waited for until its protocol is known, which
// the stopping channel cuts short (Conn.setReadDeadline).
func awaitDrained(conns []*Conn) {
	deadline := time.Now().Add(drainTimeout)
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	for _, c := range conns {
		for c.mode.Load() == modeUndecided && !c.isDead() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !c.drainSent.Load() {
			continue
		}
		select {
		case <-c.readDone:
		case <-timer.C:
			return
		}
	}
}

// drainAnswered handles a client's Drain: it checks the frame and reports
// false, so that the read loop ends there. The writer goes on until the
// server closes the connection.
func (c *Conn) drainAnswered(body []byte) bool {
	if err := wire.DecodeDrain(body); err != nil {
		c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
		return false
	}
	c.logger().Debug("client drained")
	return false
}

// connsLocked returns the channel's connections, in no order, for a
// caller to go through once it has let go of ch.mu, which it holds now.
func (ch *Channel) connsLocked() []*Conn {
	conns := make([]*Conn, 0, len(ch.all))
	for c := range ch.all {
		conns = append(conns, c)
	}
	return conns
}
