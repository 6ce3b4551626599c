package natslink

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// The outage buffer keeps the events published while the link is not
// connected. nats.go would keep them itself and send them the moment it
// is back: before the other servers, which reconnect on their own
// schedule after a NATS server restarts, have subscribed again, so that
// NATS gave them to nobody. The link sends them once it has heard again,
// since the connection came back, every peer it heard before the
// connection was lost (each peer's heartbeat follows its subscriptions
// on its connection), or PeerTimeout has passed. Events published
// meanwhile wait behind them, in order. nats.go keeps nothing
// (natsPending): what the link hands it as it begins to reconnect, in
// the instant after the link last saw it connected, it refuses, and
// the link keeps.
type outage struct {
	mu      sync.Mutex
	holding bool // from the first event kept to the last one sent
	queue   []keptMsg
	bytes   int       // of the queue
	events  int       // in the queue
	since   time.Time // when holding began
	// releasing is what release took from the queue and has yet to hand
	// to nats.go, in bytes: bytes and releasing are bounded by
	// Config.Buffer together.
	releasing int
	// progress is when the buffer last drained (release handed nats.go
	// a message) or the connection came back; room, made by a publisher
	// waiting for room (awaitRoom), is closed then.
	progress time.Time
	room     chan struct{}
	// awaiting is true while outageLoop waits for the peers before it
	// sends the buffer (awaitPeers, bounded by PeerTimeout): publishers
	// wait for room meanwhile however long it takes.
	awaiting bool
	// awaited are the peers heard within PeerTimeout when holding began.
	awaited []uuid.UUID
	kick    chan struct{}
	seqBuf  []byte // where send writes a number (setSeq)
	// told: outageLoop logged that it sends the buffer, since the
	// connection came back (up) or the buffer last drained.
	told bool
	// over: CloseInto has counted the buffer for the last time
	// (dropKeptForGood). What jsSendAgain would put back now, as a
	// connection lost while the link closes, is counted dropped
	// instead: nothing would send it, nor count it.
	over bool
}

// keptMsg is a message kept in the outage buffer: a copy, as the
// publishers reuse theirs.
type keptMsg struct {
	m      *nats.Msg
	events int
	size   int
	// channel: a channel's events (not a reply), which a link with
	// JetStream sends to the stream; stored: for the JetStream stream
	// (publishMsg), as the link that keeps it sends them.
	channel, stored bool
	// again: in flight when the connection was lost, put back by
	// jsSendAgain ahead of everything the buffer held
	again bool
}

// natsPending is the buffer nats.go keeps while it reconnects: none
// (-1), so that it refuses what is published meanwhile. It would send
// it first once back: a channel's events ahead of those that were in
// flight as the connection went, which go back to the outage buffer
// (jsSendAgain), so that the stream stored them out of order; and
// before the other servers have subscribed again. The link keeps them
// instead. What else it refuses meanwhile (acknowledgements to
// JetStream, heartbeats, pull requests) comes again: the consumer is
// reset, and pulls again, once the connection is back.
const natsPending = -1

// send numbers a message of n events on out's subject (setSeq; out nil:
// not numbered), and hands it to nats.go, or keeps it while the link
// holds (outage); m is copied if kept. nil: sent or kept, and the
// numbers are taken. It counts as published does.
func (l *Link) send(m *nats.Msg, n int, out *subjectOut) error {
	numbered := out != nil && !out.loose
	if numbered && l.cfg.FlowControl {
		if out.flow == nil {
			out.flow = l.flowOf(out.subject)
		}
		l.flowWait(out, n)
	}
	if out != nil && l.jsOut.js != nil { // a channel's: the stream keeps it
		l.jsRoom()
	}
	o := &l.out
	o.mu.Lock()
	defer o.mu.Unlock()
	l.awaitRoom(m)
	setSeq(m.Header, &o.seqBuf, l.epoch, out)
	err := l.sendLocked(m, n, out != nil)
	if err == nil && numbered {
		out.sent += uint64(n)
		if out.flow != nil {
			out.flow.sent.Store(out.sent)
		}
	}
	return err
}

// sendLocked is send's, with o.mu held; channel: m is a channel's
// events, not a reply.
func (l *Link) sendLocked(m *nats.Msg, n int, channel bool) error {
	o := &l.out
	stored := channel && l.jsOut.js != nil
	if !o.holding {
		if l.nc.IsConnected() {
			err := l.publishMsg(m, n, stored)
			if !connectionLost(err) {
				return l.published(n, err)
			}
		}
		if l.cfg.Buffer <= 0 {
			return l.published(n, nats.ErrReconnectBufExceeded) // nothing is kept
		}
		l.hold()
	}
	size := msgSize(m)
	if !o.fits(size, l.cfg.Buffer) && !l.stopping() {
		return l.published(n, nats.ErrReconnectBufExceeded)
	}
	// Once Close has begun, what publishers bring (those that waited
	// for room, the pack loop's last packs) is kept past the bound
	// rather than dropped: Close sends the buffer at once when
	// connected, or hands it to the link that takes over, and drops
	// and counts only what neither can take.
	o.queue = append(o.queue, keptMsg{m: copyMsg(m), events: n, size: size, channel: channel, stored: stored})
	o.bytes += size
	o.events += n
	return nil
}

// awaitRoom waits, o.mu held (and released while waiting), while the
// link, connected, is sending the outage buffer and the buffer has no
// room for m: the publisher goes at the pace at which NATS takes the
// buffer, as it does while connected, instead of its events being
// dropped. Only while NATS is away, or once the buffer has not drained
// for drainStall, or the link closes, does sendLocked drop what does not
// fit. The caller has not numbered m yet: whoever sends on m's subject
// waits with it.
func (l *Link) awaitRoom(m *nats.Msg) {
	o := &l.out
	if !o.holding {
		return
	}
	size := msgSize(m)
	full := func() bool { return o.holding && !o.fits(size, l.cfg.Buffer) && size <= l.cfg.Buffer }
	if !full() {
		return
	}
	start := time.Now()
	var timer *time.Timer
	for full() && l.nc.IsConnected() {
		left := l.drainStall() - time.Since(o.progress)
		if o.awaiting {
			left = l.drainStall() // awaitPeers wakes them as it ends
		}
		if left <= 0 {
			break
		}
		if o.room == nil {
			o.room = make(chan struct{})
		}
		room := o.room
		o.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(left)
			l.flowHeld.Add(1)
		} else {
			timer.Reset(left)
		}
		closing := false
		select {
		case <-room:
		case <-timer.C:
		case <-l.flowStop:
			closing = true
		}
		o.mu.Lock()
		if closing {
			break
		}
	}
	if timer != nil {
		timer.Stop()
		l.flowHeldNs.Add(uint64(time.Since(start)))
	}
}

// stopping reports whether Close has ended the publishers' waits
// (flowStop): from then on nothing waits for room.
func (l *Link) stopping() bool {
	select {
	case <-l.flowStop:
		return true
	default:
		return false
	}
}

// fits reports whether size more bytes fit the buffer of buffer bytes,
// with what release has yet to send: o.mu is held.
func (o *outage) fits(size, buffer int) bool { return o.bytes+o.releasing+size <= buffer }

// drainStall is how long a publisher waits for room in the outage
// buffer, connected, with nothing of it sent meanwhile, once the peers
// have been awaited: as long as a silent peer is awaited, and one
// Heartbeat, the period at which outageLoop looks.
func (l *Link) drainStall() time.Duration { return l.cfg.PeerTimeout + l.cfg.Heartbeat }

// drained notes that the outage buffer drained, or may (the connection
// is back), and wakes the publishers that wait for room: o.mu is held.
func (o *outage) drained() {
	o.progress = time.Now()
	o.wake()
}

// wake wakes the publishers that wait for room: o.mu is held.
func (o *outage) wake() {
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
}

// connectionLost reports whether nats.go refused a message because the
// connection is gone: lost since the link looked (nats.go reconnects,
// and keeps nothing: natsPending), or lost now (its write failed;
// nats.go then drops what it held unsent, this message among them,
// which was not written whole), or lost as nats.go took it
// (errLostInHand). Such a message is kept, not dropped.
func connectionLost(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, errLostInHand)
}

// hold begins an outage, or, when the connection is lost again while
// the buffer is being sent, a new one: o.mu is held.
func (l *Link) hold() {
	o := &l.out
	o.holding, o.since, o.awaited = true, time.Now(), o.awaited[:0]
	o.wake() // connection lost: they wait no more
	for _, p := range l.Peers() {
		o.awaited = append(o.awaited, p.Node)
	}
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// outageLoop sends what the outage buffer holds once the link is
// connected and has heard again the peers it awaits, until Close.
// Connections kick it, and it looks every Heartbeat as well.
func (l *Link) outageLoop() {
	defer l.wg.Done()
	tick := time.NewTicker(l.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.out.kick:
		case <-tick.C:
		}
		if !l.holding() || !l.connected() {
			continue
		}
		// With JetStream the stream keeps the channels' events whether
		// the peers are back or not, and what was in flight when the
		// connection went (jsSendAgain) must follow at once what
		// nats.go kept and sent on reconnecting, for the receivers to
		// put it in order: the messages for the stream at the head of
		// the buffer go at once. A reply, which NATS gives only to a
		// server subscribed already, waits for the peers, and what
		// follows it waits behind it.
		if l.cfg.JetStream && l.release(true) {
			continue
		}
		if !l.awaitPeers() {
			return // closing: Close sends the rest
		}
		l.out.mu.Lock()
		n, since, told := l.out.events, l.out.since, l.out.told
		l.out.told = l.out.told || n > 0
		l.out.mu.Unlock()
		if n > 0 && !told {
			l.log.Info("sending the events kept while NATS was away", "events", n, "kept_for", time.Since(since).Round(time.Millisecond))
		}
		l.release(false)
	}
}

// connected reports whether outageLoop and release may hand nats.go
// the outage buffer: nats.go is connected, and has not refused a
// message of it as its connection was lost (lostAt) within the last
// Heartbeat. nats.go counts itself connected until it reads the end of
// the connection or misses its pings, while its writes fail (a broken
// pipe): each attempt meanwhile fails too, and would kick the next at
// once.
func (l *Link) connected() bool {
	if !l.nc.IsConnected() {
		return false
	}
	at := l.lostAt.Load()
	return at == 0 || time.Since(time.Unix(0, at)) >= l.cfg.Heartbeat
}

func (l *Link) holding() bool {
	l.out.mu.Lock()
	defer l.out.mu.Unlock()
	return l.out.holding
}

// awaitPeers waits until every awaited peer has been heard since the
// outage began, or for PeerTimeout from now, or the connection is lost
// again. It reports false if the link closes meanwhile.
func (l *Link) awaitPeers() bool {
	l.out.mu.Lock()
	since, awaited := l.out.since, slices.Clone(l.out.awaited)
	l.out.awaiting = true
	l.out.mu.Unlock()
	defer func() {
		l.out.mu.Lock()
		l.out.awaiting = false
		l.out.drained() // the buffer goes now: its publishers' wait begins again
		l.out.mu.Unlock()
	}()
	deadline := time.Now().Add(l.cfg.PeerTimeout)
	for {
		awaited = slices.DeleteFunc(awaited, func(node uuid.UUID) bool { return l.peers.heardSince(node, since) })
		if len(awaited) == 0 || time.Now().After(deadline) || !l.nc.IsConnected() {
			if len(awaited) > 0 {
				l.log.Info("sending the events kept while NATS was away, without having heard all the peers again",
					"unheard", len(awaited))
			}
			return true
		}
		select {
		case <-l.stop:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// release hands the outage buffer to nats.go, in order, and what comes
// to it meanwhile, until it is empty: then the link sends directly again,
// and release reports true. A message nats.go refuses as the connection
// is lost again goes back, with the rest, to the head of the buffer;
// with storedOnly, so does the first message that is not for the
// JetStream stream.
//
// Nor does it hand nats.go anything once the connection is lost (nats.go
// would refuse it: natsPending), or once jsSendAgain has put back what
// was in flight: those messages were sent before the rest of the batch,
// and go again before it. Otherwise the stream would store the rest (up
// to a window) ahead of them, more than the receivers hold back to put
// back in order.
func (l *Link) release(storedOnly bool) bool {
	o := &l.out
	for {
		o.mu.Lock()
		if len(o.queue) == 0 {
			if o.holding {
				o.holding, o.told = false, false
				l.dropping.Store(false)
				o.drained()
			}
			o.mu.Unlock()
			return true
		}
		batch := o.queue
		o.queue, o.releasing, o.bytes, o.events = nil, o.bytes, 0, 0
		o.mu.Unlock()
	send:
		for i, k := range batch {
			if storedOnly && !k.stored {
				l.keepAgain(batch[i:], false)
				return false
			}
			if k.stored {
				l.jsRoom() // may wait through a lost connection
			}
			switch {
			case !l.connected():
				l.keepAgain(batch[i:], true)
				return false
			case l.sentAgain():
				l.keepAgain(batch[i:], false)
				break send // the buffer again, from its head
			}
			err := l.publishMsg(k.m, k.events, k.stored)
			if connectionLost(err) {
				l.lostAt.Store(time.Now().UnixNano())
				l.keepAgain(batch[i:], true)
				return false
			}
			l.published(k.events, err)
			o.mu.Lock()
			o.releasing -= k.size
			o.drained()
			o.mu.Unlock()
		}
	}
}

// sentAgain reports whether the outage buffer begins with what
// jsSendAgain put back: release took the whole buffer, so it was put
// back since.
func (l *Link) sentAgain() bool {
	o := &l.out
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue) > 0 && o.queue[0].again
}

// keepAgain puts rest back at the head of the outage buffer, before
// what came to it meanwhile; lost: the connection was lost again. What
// jsSendAgain put back meanwhile, at the head, was in flight before
// rest was taken (release took the whole buffer), and stays ahead.
func (l *Link) keepAgain(rest []keptMsg, lost bool) {
	o := &l.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if lost {
		l.hold()
	}
	n := 0
	for n < len(o.queue) && o.queue[n].again {
		n++
	}
	o.queue = slices.Concat(o.queue[:n], rest, o.queue[n:])
	o.bytes, o.events, o.releasing = 0, 0, 0
	for _, k := range o.queue {
		o.bytes += k.size
		o.events += k.events
	}
}

// handOver moves what l's outage buffer holds to next's, as far as
// next's Buffer takes it, in order, with the peers l awaits: next, held,
// has sent nothing yet. It returns the events moved; the rest stays in
// l's buffer. A channel's events go to the stream if next has
// JetStream, whether l had or not.
func (l *Link) handOver(next *Link) int {
	o, to := &l.out, &next.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 || o.queue[0].size > next.cfg.Buffer {
		return 0 // nothing fits: next sends directly, and l drops it all
	}
	to.mu.Lock()
	defer to.mu.Unlock()
	if !to.holding {
		to.holding, to.since = true, o.since
		to.awaited = append(to.awaited[:0], o.awaited...)
	}
	moved, i := 0, 0
	for ; i < len(o.queue) && to.bytes+o.queue[i].size <= next.cfg.Buffer; i++ {
		k := o.queue[i]
		k.stored = k.channel && next.jsOut.js != nil
		to.queue = append(to.queue, k)
		to.bytes += k.size
		to.events += k.events
		o.bytes -= k.size
		o.events -= k.events
		moved += k.events
	}
	o.queue = o.queue[i:]
	select {
	case to.kick <- struct{}{}:
	default:
	}
	return moved
}

// dropKept empties the outage buffer, and returns how many events it held.
func (l *Link) dropKept() int {
	o := &l.out
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.events
	o.queue, o.bytes, o.events, o.holding = nil, 0, 0, false
	return n
}

// dropKeptForGood is dropKept for the last time, as the link closes:
// what jsSendAgain would put back from then on is dropped and counted
// at once.
func (l *Link) dropKeptForGood() int {
	l.out.mu.Lock()
	l.out.over = true
	l.out.mu.Unlock()
	return l.dropKept()
}

// keptBytes is what the outage buffer holds, in bytes, with what
// release has yet to hand to nats.go.
func (l *Link) keptBytes() int {
	l.out.mu.Lock()
	defer l.out.mu.Unlock()
	return l.out.bytes + l.out.releasing
}

// heardSince reports whether node's heartbeat came after t.
func (t *peerTable) heardSince(node uuid.UUID, since time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[node]
	return p != nil && p.LastSeen.After(since)
}

// publishMsg hands m, a message of n events, to nats.go: to the stream,
// asking for its acknowledgement, when stored (jsPublish).
func (l *Link) publishMsg(m *nats.Msg, n int, stored bool) error {
	if stored {
		return l.jsPublish(m, n)
	}
	return l.nc.PublishMsg(m)
}

// copyMsg copies m, headers and data: the publishers reuse theirs.
func copyMsg(m *nats.Msg) *nats.Msg {
	h := make(nats.Header, len(m.Header))
	for k, vs := range m.Header {
		h[k] = slices.Clone(vs)
	}
	return &nats.Msg{Subject: m.Subject, Header: h, Data: slices.Clone(m.Data)}
}

// msgSize is what m takes in the outage buffer: subject, data, headers.
func msgSize(m *nats.Msg) int {
	size := len(m.Subject) + len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4 // "k: v\r\n"
		}
	}
	return size
}
