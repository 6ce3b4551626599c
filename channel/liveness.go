package channel

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// pingConfig is the liveness check's setting; see Config.PingInterval.
type pingConfig struct{ interval, timeout time.Duration }

// The frames of the liveness check, shared by every client; never
// modified.
var (
	pingFrame = wire.AppendPing(nil)
	pongFrame = wire.AppendPong(nil)
)

// liveness is what the check remembers of one client.
type liveness struct {
	heard  uint64    // frames received, as last seen
	since  time.Time // when heard last moved; zero before the first look
	held   bool      // its reader was held at the last look
	pinged time.Time // when the last ping went out
}

// SetPing changes the liveness check of the channel's clients, from its
// next round on; see Config.PingInterval.
func (ch *Channel) SetPing(interval, timeout time.Duration) {
	interval = max(interval, 0)
	ch.ping.Store(&pingConfig{interval, max(timeout, 2*interval)})
}

// livenessLoop checks the clients every quarter of the ping interval,
// until Quiesce. One goroutine per channel does it for all its clients:
// ten thousand idle clients cost no timer each.
func (ch *Channel) livenessLoop() {
	defer ch.wg.Done()
	for {
		p := ch.ping.Load()
		period := heldPingEvery / 4 // off: held clients only
		if p.interval > 0 {
			period = max(p.interval/4, time.Millisecond)
		}
		t := time.NewTimer(period)
		select {
		case <-ch.liveStop:
			t.Stop()
			return
		case <-t.C:
		}
		ch.checkLiveness(p, time.Now())
	}
}

// heldPingEvery bounds how long a client whose reader the server holds
// goes without a ping (checkLiveness): well within the Go client's ping
// timeout (15 s), whatever pinginterval is, and with pinging off too,
// as the client's own check does not know the server's setting. A
// variable for tests, set before the channel opens.
var heldPingEvery = 2 * time.Second

// checkLiveness pings each client of protocol version 2 or later that
// has sent nothing for the ping interval, and drops one that has sent
// nothing for the ping timeout; with pinging off (interval 0), it only
// pings the held clients, as below. Clients of older versions and JSON
// clients know no pings and are left alone.
//
// A client whose reader the server holds is not read: its silence is
// the server's doing, and it is never dropped for it. Its reader is
// held when it waits for a client past its high-water mark (flow.go),
// or when it is anywhere but in a read of the socket and the client's
// frames have not moved: the Handler waits, as a link's flow control
// makes it. Such a client hears nothing from a server that reads none
// of its pings, so it is pinged while held, every ping interval or
// heldPingEvery if that is shorter: the ping is a sign of life to the
// client's own check (bus.Ping), which would otherwise give the server
// up and reconnect, cutting the write it is in. Its answer waits behind
// what the client is writing.
func (ch *Channel) checkLiveness(p *pingConfig, now time.Time) {
	every := heldPingEvery
	if p.interval > 0 {
		every = min(every, p.interval)
	}
	for _, c := range ch.receiverList() {
		if c.removed.Load() || c.mode.Load() != modeBinary || c.version < wire.PingVersion {
			continue
		}
		heard := c.framesIn.Load() + c.pings.Load()
		if heard != c.live.heard || c.live.since.IsZero() {
			c.live.heard, c.live.since, c.live.held = heard, now, false
			continue
		}
		if c.waitingOn.Load() != nil || !c.inRead.Load() {
			// Held since its last frame at the latest.
			c.live.held = true
			if now.Sub(c.live.since) >= every && now.Sub(c.live.pinged) >= every {
				c.Send(pingFrame)
				c.live.pinged = now
			}
			continue
		}
		if c.live.held {
			// Let go just now: its silence counts from here.
			c.live.held, c.live.since = false, now
		}
		if p.interval == 0 {
			continue
		}
		switch idle := now.Sub(c.live.since); {
		case idle >= p.timeout:
			ch.pingTimeouts.Add(1)
			c.finish(slog.LevelWarn, wire.CodePingTimeout,
				fmt.Sprintf("nothing received from the client for %v, not even the answer to a ping (pingtimeout %v)", idle.Round(time.Millisecond), p.timeout),
				errorGrace)
			c.live.since = now.Add(time.Hour) // finishing: do not count it again
		case idle >= p.interval && now.Sub(c.live.pinged) >= p.interval:
			c.Send(pingFrame)
			c.live.pinged = now
		}
	}
}

// handlePing answers a client's Ping with a Pong; a Pong needs no
// answer. Both show that the client is there. It reports false when the
// connection must stop reading.
func (c *Conn) handlePing(t wire.FrameType, body []byte) bool {
	var err error
	if t == wire.FramePing {
		err = wire.DecodePing(body)
	} else {
		err = wire.DecodePong(body)
	}
	if err != nil {
		c.finish(slog.LevelWarn, wire.CodeProtocol, err.Error(), errorGrace)
		return false
	}
	c.pings.Add(1)
	if t == wire.FramePing {
		c.Send(pongFrame)
	}
	return true
}
