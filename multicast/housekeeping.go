package multicast

import (
	"os"
	"time"

	"github.com/google/uuid"
)

// housekeeping sends heartbeats, expires incomplete messages, ages
// peers out, and runs the receiver's repair timer (NAKs and gap
// timeouts), until the link closes.
func (l *Link) housekeeping() {
	defer l.wg.Done()
	tick := time.NewTicker(l.cfg.Heartbeat)
	defer tick.Stop()
	repair := time.NewTimer(time.Hour)
	repair.Stop()
	defer repair.Stop()
	status := time.NewTimer(time.Hour)
	status.Stop()
	defer status.Stop()
	statusArmed := false
	var armed time.Time // when the repair timer fires; zero when stopped
	arm := func(at, now time.Time) {
		if at.IsZero() || !armed.IsZero() && !at.Before(armed) {
			return
		}
		armed = at
		repair.Reset(max(at.Sub(now), minRepairTick))
	}
	// The links of a node share its orderer, but each runs its own
	// repair timer, armed when it sees a new gap: gaps that another link
	// saw, one a reload has closed since, would wait for good, holding
	// what follows them, and flow control the senders. So the timer is
	// armed at the start and at each heartbeat when the orderer has work
	// and the timer is stopped.
	orphans := func(now time.Time) {
		l.lockRx()
		work := l.ord.pending()
		l.mu.Unlock()
		if work && armed.IsZero() {
			arm(now, now)
		}
	}
	orphans(time.Now())
	l.sendHeartbeat()
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			l.sendHeartbeat()
			l.sendStatus()
			if l.flow != nil {
				l.flow.age(now)
			}
			l.logFlow()
			l.lockRx()
			l.ra.expire(now)
			expired, evicted, expiredTotal, evictedTotal := l.ra.untold()
			gone := l.peers.age(now, l.cfg.PeerTimeout)
			l.ord.age(now, l.cfg.PeerTimeout)
			l.mu.Unlock()
			for _, p := range gone {
				l.log.Info("peer gone: no heartbeat", "peer", p.Node, "host", p.Host, "pid", p.PID, "silent", now.Sub(p.LastSeen).Round(time.Millisecond))
			}
			if expired+evicted > 0 {
				// At most once a heartbeat, for what the last one did not say.
				l.log.Warn("incomplete messages dropped: their other fragments did not come within the reassembly timeout (expired), or the reassembly bound was full (evicted)",
					"expired", expired, "evicted", evicted, "expired_total", expiredTotal, "evicted_total", evictedTotal)
			}
			l.logAndDeliver()
			orphans(now)
		case <-l.kick:
			now := time.Now()
			arm(now.Add(l.ord.nakDelay), now)
		case now := <-repair.C:
			armed = time.Time{}
			arm(l.repairTick(now), now)
			poke(l.status.kick) // skips move positions too
		case <-l.status.kick:
			if !statusArmed {
				statusArmed = true
				status.Reset(statusDelay)
			}
		case <-status.C:
			statusArmed = false
			l.sendStatus()
		}
	}
}

func (l *Link) sendHeartbeat() {
	l.enqueue(KindHeartbeat, uuid.New(), l.heartbeatMsg(false), false) // fails only once the link is closed
}

// heartbeatMsg is the message of a heartbeat of this link now, saying that
// the node leaves if leaving.
func (l *Link) heartbeatMsg(leaving bool) []byte {
	hb := Heartbeat{PID: os.Getpid(), LastSeq: l.seq.Load(), Host: l.host, Version: l.cfg.Version, Channels: l.cfg.Channels(), Leaving: leaving}
	msg := AppendHeartbeat(nil, &hb)
	for len(msg) > l.cfg.MaxMessage && len(hb.Channels) > 0 {
		// Too many channels to announce within MaxMessage: announce fewer.
		hb.Channels = hb.Channels[:len(hb.Channels)/2]
		msg = AppendHeartbeat(msg[:0], &hb)
	}
	return msg
}
