package multicast

import (
	"strings"
	"sync"
	"time"
)

// Loss repair, the link's side: sending NAKs for the gaps the orderer
// finds, answering NAKs from the history, and the queue through which
// both reach the writer, so that every datagram leaves by the one write
// path (packer.flush).

const (
	// DefaultRepairRate bounds the bytes per second a node resends in
	// answer to NAKs.
	DefaultRepairRate = 32 << 20
	// repairHoldoff is how long a datagram resent is not resent again:
	// the repair went to the whole group, so NAKs from several receivers
	// for one loss are answered once.
	repairHoldoff = 5 * time.Millisecond
	// minRepairTick is the shortest wait between two runs of the
	// receiver's repair timer, which bounds the NAKs a node sends.
	minRepairTick = 2 * time.Millisecond
	// maxCtlQueue bounds the bytes of NAKs and repairs waiting for the
	// writer; more are dropped and counted in Stats.CtlDropped.
	maxCtlQueue = 1 << 20
)

// ctlItem is a NAK or repair waiting for the writer, which gives it its
// header and stream-1 sequence number.
type ctlItem struct {
	kind    Kind
	records int
	body    []byte
}

// ctlQueue holds the NAKs and repairs waiting for the writer.
type ctlQueue struct {
	mu    sync.Mutex
	items []ctlItem
	bytes int
}

// sendCtl queues a NAK or repair body for the writer.
func (l *Link) sendCtl(kind Kind, records int, body []byte) {
	c := &l.ctl
	c.mu.Lock()
	if c.bytes+len(body) > maxCtlQueue {
		c.mu.Unlock()
		l.counts.ctlDropped.Add(1)
		return
	}
	c.items = append(c.items, ctlItem{kind, records, body})
	c.bytes += len(body)
	c.mu.Unlock()
	poke(l.q.wake)
}

// take hands the writer the NAKs and repairs queued.
func (c *ctlQueue) take() []ctlItem {
	c.mu.Lock()
	defer c.mu.Unlock()
	items := c.items
	c.items, c.bytes = nil, 0
	return items
}

// repairBucket is a token bucket of bytes for repairs. It is guarded by
// its own lock: NAKs are answered on the read goroutine, outside l.mu.
type repairBucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	at     time.Time
}

// newRepairBucket returns the bucket for a repair rate of rate bytes per
// second, within a share of maxRate when that is not 0.
func newRepairBucket(rate, maxRate int) repairBucket {
	if maxRate > 0 {
		rate = max(1, min(rate, maxRate/repairShare))
	}
	// The burst stays within what the writer's queue takes at once.
	return repairBucket{rate: float64(rate), burst: float64(max(2*MaxDatagram, min(rate/8, maxCtlQueue/2)))}
}

// take reports whether n bytes may be resent now, and takes them.
func (b *repairBucket) take(n int, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// answerNAK answers a NAK addressed to this node: the datagrams of ranges
// the history holds go out again, packed into repairs, within the repair
// rate; the parts it no longer holds are said to be gone.
func (l *Link) answerNAK(ranges []SeqRange, now time.Time) {
	// The seal's tag, if any, comes on top of what the limit allows.
	limit := min(MaxDatagram, l.cfg.Payload+repairOverhead) - (l.cfg.Payload - l.payload)
	var body []byte
	records := 0
	flush := func() {
		if records > 0 {
			l.sendCtl(KindRepair, records, body)
			l.counts.repairsSent.Add(1)
		}
		body, records = nil, 0
	}
	room := func(n int) {
		if HeaderLen+len(body)+n > limit || records == MaxRecords {
			flush()
		}
	}
	gone := func(r SeqRange) {
		room(2 + rangeLen)
		body = AppendRepairGone(body, r)
		records++
		l.counts.unavailable.Add(r.Len())
	}
	limited := false
	for _, r := range ranges {
		if limited {
			break
		}
		l.hist.lookup(r, now, repairHoldoff, func(seq uint64, d []byte) bool {
			if HeaderLen+2+len(d) > limit {
				gone(SeqRange{seq, seq}) // too big to resend whole: cannot happen with one payload
				return true
			}
			if !l.bucket.take(len(d), now) {
				l.counts.repairLimited.Add(1)
				limited = true
				return false
			}
			room(2 + len(d))
			body = AppendRepairDatagram(body, d)
			records++
			l.counts.resent.Add(1)
			return true
		}, gone)
	}
	flush()
}

// sendNAKs multicasts the NAKs the orderer found due.
func (l *Link) sendNAKs(naks []nakReq) {
	for _, n := range naks {
		l.sendCtl(KindNAK, len(n.ranges), AppendNAK(make([]byte, 0, nakTargetLen+rangeLen*len(n.ranges)), n.node, n.ranges))
		l.counts.naksSent.Add(1)
	}
}

// repairTick runs the receiver's repair timer: it skips timed-out gaps,
// delivers what that releases, sends the NAKs due, and returns when it
// has work next (zero: none).
func (l *Link) repairTick(now time.Time) time.Time {
	l.lockRx()
	naks, due := l.ord.tick(now)
	l.mu.Unlock()
	l.logAndDeliver()
	l.sendNAKs(naks)
	return due
}

// logAndDeliver logs the peers that joined or left and what the orderer
// has to say, then delivers the messages queued. l.mu must not be held.
func (l *Link) logAndDeliver() {
	l.lockRx()
	logs, joined, left := l.ord.logs, l.joined, l.left
	l.ord.logs, l.joined, l.left = nil, nil, nil
	l.mu.Unlock()
	for _, p := range joined {
		l.log.Info("peer joined", "peer", p.Node, "host", p.Host, "pid", p.PID, "version", p.Version, "from", p.Addr, "channels", strings.Join(p.Channels, ","))
	}
	for _, p := range left {
		l.log.Info("peer left the cluster", "peer", p.Node, "host", p.Host, "pid", p.PID)
	}
	if len(left) > 0 {
		l.logFlow() // as it left flow control, rather than at the next heartbeat
	}
	for _, g := range logs {
		if g.start {
			l.log.Warn("datagrams lost: skipped a gap in a peer's sequence; more may follow until the stream is whole again",
				"peer", g.node, "first", g.r.First, "last", g.r.Last, "reason", g.reason.String())
		} else {
			l.log.Info("a peer's stream is whole again", "peer", g.node, "lost", g.lost)
		}
	}
	l.deliverQueued()
}

// deliverQueued hands the queued messages to deliver, in order. Whoever
// holds deliverMu delivers everything queued until the queue is empty, so
// that when deliverQueued returns, every message queued before it was called has been
// delivered, and messages that alias a read buffer are done with.
func (l *Link) deliverQueued() {
	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	for {
		l.lockRx()
		out := l.outq
		if len(out) == 0 {
			l.mu.Unlock()
			return
		}
		l.outq, l.spare = l.spare[:0], nil
		l.mu.Unlock()
		for _, d := range out {
			l.counts.delivered.Add(1)
			l.deliver(d.from, d.msg)
		}
		clear(out)
		l.lockRx()
		l.spare = out[:0]
		l.mu.Unlock()
	}
}

// peerCounts fills in the loss counters of the peers listed. l.mu is
// held.
func (l *Link) peerCounts(peers []Peer) {
	for i := range peers {
		peers[i].Lost, peers[i].Repaired = l.ord.counts(peers[i].Node)
	}
}
