package multicast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Sending. Send copies a message into the link's send queue and returns;
// the link's writer goroutine takes everything queued at once, packs it
// into as few datagrams as it can (several whole messages per datagram,
// a large message split into fragments that fill theirs) and writes the
// datagrams with as few system calls as the platform allows. A message
// queued alone is written at once: the writer never waits for more.

// queuedOverhead is what each queued message is charged beyond its bytes,
// so that a flood of tiny messages is bounded like one of large ones.
const queuedOverhead = 64

// closeFlush bounds how long Close spends writing what is still queued.
const closeFlush = 500 * time.Millisecond

// flushWait is how long the writer may go on writing what is still
// queued once the link is closing: closeFlush, or, when another link
// takes over (CloseInto), as long as a Send waits for room (SendWait),
// since it then still waits for its receivers' windows.
func (l *Link) flushWait() time.Duration {
	if l.handingOver.Load() {
		return max(closeFlush, l.cfg.SendWait)
	}
	return closeFlush
}

// maxWriteBatch bounds the datagrams built before they are written, and
// the bytes they hold.
const (
	maxWriteBatch      = 64
	maxWriteBatchBytes = 256 << 10
)

// queued is a message waiting for the writer: its bytes are
// sendQueue.buf[off:off+n].
type queued struct {
	kind   Kind
	id     uuid.UUID
	off, n int
}

// sendQueue holds the messages that Send accepted and the writer has not
// taken yet. Two buffers take turns: senders append to one while the
// writer writes the other.
type sendQueue struct {
	mu        sync.Mutex
	msgs      []queued
	buf       []byte
	spareMsgs []queued
	spareBuf  []byte
	// charged is what the queued messages and the ones being written are
	// charged, against Config.SendQueue; peak is its highest value.
	charged, peak int
	// room is closed, and replaced, when the writer has written what it
	// took: senders waiting for room wait on it.
	room   chan struct{}
	wake   chan struct{} // capacity 1: there is something to take
	closed bool          // Close was called: take nothing more
	// heartbeat is true while a heartbeat waits to be taken: a writer
	// that cannot write does not pile them up.
	heartbeat bool
}

// Send queues one message of KindData for the group and returns; the
// link's writer sends it, split into as many fragments as it needs, and
// packed with other messages queued meanwhile. id is the message id that
// receivers drop duplicates by. msg is copied: the caller may reuse it.
//
// When the send queue is full (Config.SendQueue), Send waits up to
// Config.SendWait for the writer to make room, and then drops the message
// with ErrQueueFull, counted in Stats.QueueFull. Errors of the socket
// come later and are counted in Stats.SendErrors and logged. Send may be
// called from several goroutines at once; messages go out in the order
// their Send calls queued them.
func (l *Link) Send(id uuid.UUID, msg []byte) error {
	if len(msg) > l.cfg.MaxMessage {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooBig, len(msg), l.cfg.MaxMessage)
	}
	if len(msg) == 0 {
		return errors.New("multicast: empty message")
	}
	if !l.held.Wait(l.stop) {
		return ErrClosed
	}
	return l.enqueue(KindData, id, msg, true)
}

// enqueue copies a message into the send queue. A bounded message waits
// for room; a heartbeat does not, but is left out while another waits.
func (l *Link) enqueue(kind Kind, id uuid.UUID, msg []byte, bounded bool) error {
	q := &l.q
	cost := len(msg) + queuedOverhead
	var timer *time.Timer
	q.mu.Lock()
	for bounded && q.charged > 0 && q.charged+cost > l.cfg.SendQueue && !q.closed {
		room := q.room
		q.mu.Unlock()
		if l.cfg.SendWait < 0 {
			return l.queueFull()
		}
		if timer == nil {
			timer = time.NewTimer(l.cfg.SendWait)
			defer timer.Stop()
		}
		select {
		case <-room:
		case <-timer.C:
			return l.queueFull()
		case <-l.stop:
			return ErrClosed
		}
		q.mu.Lock()
	}
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if kind == KindHeartbeat {
		if q.heartbeat {
			q.mu.Unlock()
			return nil
		}
		q.heartbeat = true
	}
	q.push(kind, id, msg)
	q.mu.Unlock()
	poke(q.wake)
	return nil
}

// push appends a message to the queue; q.mu is held.
func (q *sendQueue) push(kind Kind, id uuid.UUID, msg []byte) {
	q.msgs = append(q.msgs, queued{kind: kind, id: id, off: len(q.buf), n: len(msg)})
	q.buf = append(q.buf, msg...)
	q.charged += len(msg) + queuedOverhead
	q.peak = max(q.peak, q.charged)
}

func (l *Link) queueFull() error {
	l.counts.queueFull.Add(1)
	return fmt.Errorf("%w: %d bytes queued, the bound is %d", ErrQueueFull, l.queueBytes(), l.cfg.SendQueue)
}

// queueBytes is what the queue is charged now.
func (l *Link) queueBytes() int {
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	return l.q.charged
}

// take hands the writer everything queued.
func (q *sendQueue) take() ([]queued, []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs, buf := q.msgs, q.buf
	q.msgs, q.buf = q.spareMsgs[:0], q.spareBuf[:0]
	q.spareMsgs, q.spareBuf = nil, nil
	q.heartbeat = false
	return msgs, buf
}

// give returns what take handed out once it is written, which makes room
// for senders.
func (q *sendQueue) give(msgs []queued, buf []byte) {
	cost := len(buf) + queuedOverhead*len(msgs)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.charged -= cost
	q.spareMsgs, q.spareBuf = msgs[:0], buf[:0]
	close(q.room)
	q.room = make(chan struct{})
}

// writeLoop writes what is queued until the link closes, and then what is
// left, for at most flushWait.
func (l *Link) writeLoop() {
	defer l.wg.Done()
	p := newPacker(l)
	for {
		stopping := false
		select {
		case <-l.q.wake:
		case <-l.stop:
			// Close has closed the queue: nothing more comes in after
			// this round.
			stopping = true
		}
		if !l.held.Opened() {
			// Held (Config.Held): the link this one replaces may still
			// be numbering stream 0. Only stream 1 goes; a link closed
			// before Release never took over, and sends nothing of its
			// queue.
			p.control(l.ctl.take())
			if stopping {
				return
			}
			continue
		}
		msgs, buf := l.q.take()
		p.pack(msgs, buf)
		p.control(l.ctl.take())
		l.q.give(msgs, buf)
		if stopping {
			p.tellDropped()
			return
		}
		if p.rewake {
			// The wake was taken while flow control held the writer.
			p.rewake = false
			poke(l.q.wake)
		}
	}
}

// poke wakes the goroutine that waits on c, a channel of capacity 1,
// unless it has been woken already.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// packer builds datagrams from queued messages and writes them in
// batches. It belongs to the writer goroutine.
type packer struct {
	l       *Link
	dgs     [][]byte // datagrams built, not written yet; the last may be open
	ends    []int    // for each, how many data messages end in it
	store   [][]byte // their buffers
	open    bool     // the last datagram takes more records
	kind    Kind     // the kind of the open datagram
	records int      // records in the open datagram
	// failures counts the batches that met a socket error, for logging
	// the 1st, 2nd, 4th... only.
	failures uint64
	// deadline, set once the link is closing, is when to stop writing
	// and count what is left as unsent.
	deadline time.Time
	unsent   bool // the deadline passed
	// dropped counts the data messages left unsent; numbered, those of
	// them in datagrams already numbered (kept in the history).
	dropped, numbered uint64
	// kept is the highest sequence number put in the history.
	kept uint64
	// ctl writes NAKs, repairs and statuses while flow control holds
	// this packer's data back; made when first needed.
	ctl *packer
	// rewake: a wake of the writer was taken while held back, and must
	// be given again once the writer is done.
	rewake bool
}

func newPacker(l *Link) *packer {
	n := max(1, min(maxWriteBatch, maxWriteBatchBytes/l.cfg.Payload))
	p := &packer{l: l, store: make([][]byte, n)}
	for i := range p.store {
		// Room for a repair too, which may carry a whole datagram.
		p.store[i] = make([]byte, 0, min(MaxDatagram, l.cfg.Payload+repairOverhead))
	}
	p.dgs = make([][]byte, 0, n)
	p.ends = make([]int, 0, n)
	return p
}

// pack writes msgs, whose bytes are in buf. Once the link is closing it
// stops writing after flushWait and counts the messages left as unsent.
func (p *packer) pack(msgs []queued, buf []byte) {
	l := p.l
	per := l.payload - Overhead
	for _, m := range msgs {
		if p.unsent {
			if m.kind == KindData {
				l.counts.unsent.Add(1)
				p.dropped++
			}
			continue
		}
		msg := buf[m.off : m.off+m.n]
		if m.kind == KindHeartbeat {
			// A heartbeat says which datagram went out before it.
			binary.BigEndian.PutUint64(msg[4:12], l.seq.Load())
		}
		count := Fragments(len(msg), l.payload)
		for f := range count {
			part := msg[f*per : min(len(msg), (f+1)*per)]
			p.record(m.kind, &Record{ID: m.id, Index: f, Count: count, Total: len(msg), Payload: part})
		}
		if m.kind == KindData {
			p.ends[len(p.ends)-1]++
		}
	}
	p.flush()
}

// control writes the NAKs and repairs queued, each a datagram of its own
// numbered in stream 1.
func (p *packer) control(items []ctlItem) {
	l := p.l
	if len(items) == 0 {
		return
	}
	defer p.flush()
	for _, it := range items {
		p.open = false
		if p.unsent {
			continue
		}
		d := p.start(&Header{Kind: it.kind, Records: it.records, Cluster: l.cluster, Node: l.cfg.Node, Seq: l.ctlSeq.Add(1)})
		*d = append(*d, it.body...)
	}
}

// record adds one record, in the open datagram when it fits there, else
// in a new one.
func (p *packer) record(kind Kind, r *Record) {
	l := p.l
	need := RecordHeaderLen + len(r.Payload)
	if p.open {
		d := p.dgs[len(p.dgs)-1]
		if kind != p.kind || p.records == MaxRecords || len(d)+need > l.payload {
			p.open = false
		}
	}
	if !p.open {
		p.start(&Header{Kind: kind, Records: 0, Cluster: l.cluster, Node: l.cfg.Node, Seq: l.seq.Add(1)})
		p.open, p.kind, p.records = true, kind, 0
	}
	d := &p.dgs[len(p.dgs)-1]
	*d = AppendRecord(*d, r)
	p.records++
	(*d)[5] = byte(p.records)
}

// start begins a new datagram with header h, in the next free buffer,
// after writing the datagrams built when there is none, and returns it.
func (p *packer) start(h *Header) *[]byte {
	if len(p.dgs) == len(p.store) {
		p.flush()
	}
	p.dgs = append(p.dgs, AppendHeader(p.store[len(p.dgs)][:0], h))
	p.ends = append(p.ends, 0)
	return &p.dgs[len(p.dgs)-1]
}

// flush writes the datagrams built. A datagram the socket refuses is
// counted and skipped; the rest are still tried, unless the socket is
// closed. A data message counts as sent once the datagram with its last
// fragment is written.
func (p *packer) flush() {
	l := p.l
	dgs, ends := p.dgs, p.ends
	p.dgs, p.ends, p.open = p.dgs[:0], p.ends[:0], false
	for len(dgs) > 0 {
		k := 0
		if !p.closing() {
			k = p.allowed(dgs)
		}
		if k == 0 {
			// Closing for too long. Numbered already: in the node's
			// history, the link that a reload opens in this one's
			// place answers the NAKs for them, and the receivers
			// repair them instead of skipping them as gone.
			p.keep(dgs)
			for _, e := range ends {
				l.counts.unsent.Add(uint64(e))
				p.dropped += uint64(e)
				p.numbered += uint64(e)
			}
			return
		}
		p.keep(dgs[:k])
		l.pace(dgs[:k])
		n, err := l.sock.writeBatch(dgs[:k])
		p.sent(dgs[:n], ends[:n])
		dgs, ends = dgs[n:], ends[n:]
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			l.counts.sendErrors.Add(uint64(len(dgs)))
			return
		}
		l.counts.sendErrors.Add(1)
		dgs, ends = dgs[1:], ends[1:]
		if p.failures++; bits.OnesCount64(p.failures) == 1 {
			l.log.Warn("sending a datagram failed", "to", l.dst, "failures", p.failures, "err", err)
		}
	}
}

// keep puts the datagrams of stream 0 of dgs in the history, as they are
// now, before anything else touches them, to resend them on a NAK.
func (p *packer) keep(dgs [][]byte) {
	for _, d := range dgs {
		if seq := seqOf(d); Kind(d[3]).Stream() == 0 && seq > p.kept {
			p.l.hist.Add(seq, d)
			p.kept = seq
		}
	}
}

// sent counts the datagrams written, and the data messages that end in
// them, and tells flow control how far stream 0 has gone.
func (p *packer) sent(dgs [][]byte, ends []int) {
	l := p.l
	var top uint64
	for i, d := range dgs {
		l.counts.datagramsSent.Add(1)
		l.counts.bytesSent.Add(uint64(len(d)))
		l.counts.messagesSent.Add(uint64(ends[i]))
		if Kind(d[3]).Stream() == 0 {
			top = seqOf(d)
		}
	}
	if top > 0 && l.flow != nil {
		l.flow.wrote(top)
	}
}

// maxFlowWait bounds one wait of a writer held back by flow control,
// after which it looks again.
const maxFlowWait = 50 * time.Millisecond

// allowed returns how many of the leading datagrams of dgs flow control
// lets the writer write: it waits for receivers' windows while it must,
// writing NAKs, repairs and statuses meanwhile. Once the link is
// closing, it holds nothing back, unless another link takes over
// (CloseInto): then it waits as before, until closing passes its
// deadline, and returns 0 then.
func (p *packer) allowed(dgs [][]byte) int {
	l := p.l
	if l.flow == nil {
		return len(dgs)
	}
	var timer *time.Timer
	stop := l.stop
	for waited := false; ; waited = true {
		now := time.Now()
		n, changed, recheck, by := l.flow.allowed(dgs, now)
		if n > 0 {
			return n
		}
		if l.stopped() {
			if !l.handingOver.Load() {
				return len(dgs)
			}
			if p.closing() {
				return 0
			}
			stop = nil // closed for good: wait for the windows alone
		}
		if !waited {
			l.counts.flowHeld.Add(1)
		}
		wait := maxFlowWait
		if !recheck.IsZero() {
			wait = max(time.Millisecond, min(wait, recheck.Sub(now)))
		}
		if !p.deadline.IsZero() {
			wait = max(time.Millisecond, min(wait, time.Until(p.deadline)))
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-changed:
		case <-l.q.wake:
			p.rewake = true
			p.serveControl()
		case <-stop:
		case <-timer.C:
		}
		l.flow.heldFor(by, time.Since(now))
	}
}

// serveControl writes the NAKs, repairs and statuses queued while the
// writer's data is held back.
func (p *packer) serveControl() {
	if p.ctl == nil {
		p.ctl = newPacker(p.l)
	}
	p.ctl.control(p.l.ctl.take())
}

// tellDropped logs, as the writer ends, the data messages it left
// unsent (Stats.Unsent) because closing took longer than flushWait.
func (p *packer) tellDropped() {
	if p.dropped == 0 {
		return
	}
	p.l.log.Warn("the multicast link closed before it wrote all it was given: messages left unsent",
		"messages", p.dropped, "wait", p.l.flushWait(),
		// A link of the node that takes over (a reload) resends these
		// when asked: they may still arrive.
		"numbered", p.numbered)
}

// closing reports whether the link has been closing for longer than
// flushWait, after which the writer writes nothing more.
func (p *packer) closing() bool {
	switch {
	case p.unsent:
		return true
	case p.deadline.IsZero():
		if p.l.stopped() {
			p.deadline = time.Now().Add(p.l.flushWait())
		}
		return false
	case time.Now().After(p.deadline):
		p.unsent = true
		return true
	}
	return false
}
