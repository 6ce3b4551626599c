package natslink

import (
	"cmp"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsOrder hands the messages of a JetStream consumer to the link's
// handler in the order of their senders' numbering (HeaderSeq), per
// subject and epoch. NATS redelivers a message whose delivery failed,
// and the redeliveries can come after later messages, and out of order
// among themselves: when a reload swaps the link, the server sends some
// messages to the old link's pull requests as it stops consuming; they
// come again to the new link, mixed with the next ones. So a message
// numbered past the next one expected of its sender waits, for at most
// jsReorderWait, for those before it; then it goes, and jsCount, told
// of the messages in the order they go, counts the events that never
// came. The link that takes over gets the senders' state (handOver), so
// that its first messages wait for the redeliveries too.
//
// A message numbered below the next one expected, from the first one
// delivered on, and not in a gap given up on, was delivered already: it
// is a copy (the sender sent it again after a lost connection, or NATS
// delivered it again), acknowledged and dropped. One in a gap given up
// on (a NATS server without consumer reset redelivers what a connection
// lost after AckWait), one
// numbered below the first one delivered (a server that started after
// it was sent gets it late from NATS), and messages not numbered (plain
// NATS programs) go at once; the copies of the first two kinds are
// known as copies too. A message the handler does not take (the
// link is done) is given back (Nak), so that the next consumer of the
// durable gets it first, without waiting out AckWait.
//
// From a lost connection until the link has reset its consumer
// (jsReset), nothing is held: a message past a gap is dropped
// unacknowledged, since the reset brings it again, after the events
// the gap lacks, in the order of the stream.
type jsOrder struct {
	mu      sync.Mutex // one message at a time
	handle  func(*nats.Msg) bool
	count   func(jetstream.Msg) // jsCount, in the order delivered
	log     *slog.Logger
	senders map[jsKey]*jsSender
	takes   uint64 // messages taken: jsSender.used's clock
	nHeld   int    // in all senders
	timer   *time.Timer
	wait    time.Duration // jsReorderWait, as the link opened
	ended   bool          // stop: nothing is held from then on
	// paused, from a lost connection until the consumer has been reset
	// (resume), holds nothing past a gap: what NATS was sending as the
	// connection went comes again only after the reset, in the order
	// of the stream, and so does what is past the gap (unacknowledged).
	paused bool
}

// jsKey is a sender's numbering: its epoch on a subject.
type jsKey struct{ subject, epoch string }

// jsSender is what jsOrder knows of one sender's numbering. From base
// to next, every number was delivered, or given up on (gaps).
type jsSender struct {
	next, base uint64
	used       uint64   // jsOrder.takes at its last message
	gaps       []span   // given up on: a message of them that comes after all goes, late
	held       []heldJS // waiting for those before them, in the order of their numbers
	// below are the numbers under base delivered since: the messages a
	// server gets late from NATS after it first heard their sender, so
	// that their copies are known as copies (at most maxGaps spans; a
	// copy of one forgotten goes, and the router's dedup drops it).
	below []span
}

// span is the numbers [start, end).
type span struct{ start, end uint64 }

// maxGaps bounds the gaps remembered per sender.
const maxGaps = 64

// heldJS is a message that waits for those numbered before it.
type heldJS struct {
	m          jetstream.Msg
	first, end uint64 // its events' numbers: [first, end)
	since      time.Time
}

// jsReorderWait bounds how long a message waits for the messages
// numbered before it. A link reads it as it opens (jsOrder.wait). The
// tests that check what comes in order within it raise it, so that a
// loaded machine fills the gap in time.
var jsReorderWait = 250 * time.Millisecond

// jsMaxHeld bounds how many messages wait.
const jsMaxHeld = 4096

// init sets the handler, and count, which is told of each message
// before it is handled; the senders handed over (handOver) stay.
func (o *jsOrder) init(handle func(*nats.Msg) bool, count func(jetstream.Msg), log *slog.Logger) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.handle, o.count, o.log = handle, count, log
	if o.senders == nil {
		o.senders = make(map[jsKey]*jsSender)
	}
}

// take hands m to the handler, or holds it until the messages numbered
// before it have come, or jsReorderWait has passed. o.mu is held.
func (o *jsOrder) take(m jetstream.Msg) {
	key, first, end, ok := jsNumbering(m)
	if !ok || o.ended {
		o.deliver(m)
		return
	}
	o.takes++
	sd := o.senders[key]
	if sd != nil {
		sd.used = o.takes
	}
	switch {
	case sd == nil:
		if len(o.senders) >= maxEpochs {
			o.forget()
		}
		sd = &jsSender{next: first, base: first, used: o.takes}
		o.senders[key] = sd
	case first > sd.next && o.paused:
		return // unacknowledged: the reset brings it again
	case first > sd.next:
		o.hold(sd, heldJS{m: m, first: first, end: end, since: time.Now()})
		return
	case end <= sd.next && first >= sd.base && !sd.late(first, end),
		end <= sd.base && sd.seenBelow(first, end):
		// Delivered already: a copy that the sender sent again
		// (jsSendAgain), or that NATS delivered again.
		o.count(m)
		m.Ack()
		return
	}
	o.deliver(m)
	sd.next = max(sd.next, end)
	o.release(sd, false)
}

// forget makes room in the table of senders: it forgets the half of
// those with nothing held that were heard from least lately (old
// epochs of servers that restarted, channels gone quiet), keeping the
// live ones' numbering.
func (o *jsOrder) forget() {
	var idle []uint64
	for _, sd := range o.senders {
		if len(sd.held) == 0 {
			idle = append(idle, sd.used)
		}
	}
	if len(idle) == 0 {
		return
	}
	slices.Sort(idle)
	before := idle[len(idle)/2]
	maps.DeleteFunc(o.senders, func(_ jsKey, sd *jsSender) bool { return len(sd.held) == 0 && sd.used <= before })
}

// hold keeps h, in the order of the numbering, and arms the timer; a
// copy of a message held already is acknowledged and dropped, and not
// counted: it lies past the gap the held one waits for, and jsCount,
// told of it now, would count the gap's events missed before they come.
// The held one is counted as it goes.
func (o *jsOrder) hold(sd *jsSender, h heldJS) {
	i, found := slices.BinarySearchFunc(sd.held, h.first, func(a heldJS, first uint64) int { return cmp.Compare(a.first, first) })
	if found {
		h.m.Ack()
		return
	}
	sd.held = slices.Insert(sd.held, i, h)
	o.nHeld++
	if o.nHeld > jsMaxHeld {
		o.releaseAll() // a long gap: what came goes, in order
		return
	}
	if o.timer == nil {
		o.timer = time.AfterFunc(o.wait, o.expire)
	} else if o.nHeld == 1 {
		o.timer.Reset(o.wait)
	}
}

// release delivers sd's held messages that are next in line; with
// skip, also those past a gap, once the first of them has waited
// jsReorderWait. o.mu is held.
func (o *jsOrder) release(sd *jsSender, skip bool) {
	k := 0
	for ; k < len(sd.held); k++ {
		h := sd.held[k]
		if h.first > sd.next && !(skip && time.Since(sd.held[0].since) >= o.wait) {
			break
		}
		o.advance(sd, h)
	}
	o.nHeld -= k
	sd.held = slices.Delete(sd.held, 0, k)
}

// advance delivers h, a held message of sd, giving up on the numbers
// between the next one expected and h's, if any.
func (o *jsOrder) advance(sd *jsSender, h heldJS) {
	if h.first > sd.next {
		sd.gaps = append(sd.gaps, span{sd.next, h.first})
		if len(sd.gaps) > maxGaps {
			sd.gaps = slices.Delete(sd.gaps, 0, 1)
		}
	}
	o.deliver(h.m)
	sd.next = max(sd.next, h.end)
}

// seenBelow reports whether [first, end), below base, was delivered
// already, and notes it as delivered if not.
func (sd *jsSender) seenBelow(first, end uint64) bool {
	for _, s := range sd.below {
		if first >= s.start && end <= s.end {
			return true
		}
	}
	if n := len(sd.below); n > 0 && sd.below[n-1].end == first {
		sd.below[n-1].end = end // the next one of a run that comes in order
		return false
	}
	sd.below = append(sd.below, span{first, end})
	if len(sd.below) > maxGaps {
		sd.below = slices.Delete(sd.below, 0, 1)
	}
	return false
}

// late reports whether [first, end) lies in a gap given up on, and
// takes it out of the gap: what is left of the gap on either side
// stays, so that a copy of a late message is known as one, whatever
// the order in which the gap's messages come.
func (sd *jsSender) late(first, end uint64) bool {
	for i, g := range sd.gaps {
		if first >= g.end || end <= g.start {
			continue
		}
		switch {
		case first <= g.start && end >= g.end:
			sd.gaps = slices.Delete(sd.gaps, i, i+1)
		case first <= g.start:
			sd.gaps[i].start = end
		case end >= g.end:
			sd.gaps[i].end = first
		default: // inside: the gap splits in two
			sd.gaps[i].end = first
			sd.gaps = slices.Insert(sd.gaps, i+1, span{end, g.end})
			if len(sd.gaps) > maxGaps {
				sd.gaps = slices.Delete(sd.gaps, 0, 1)
			}
		}
		return true
	}
	return false
}

// releaseAll delivers every held message, in order per sender.
func (o *jsOrder) releaseAll() {
	for _, sd := range o.senders {
		for _, h := range sd.held {
			o.advance(sd, h)
		}
		sd.held = nil
	}
	o.nHeld = 0
}

// expire releases, past their gaps, the messages that have waited
// jsReorderWait, and arms the timer again for those still waiting.
func (o *jsOrder) expire() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, sd := range o.senders {
		if len(sd.held) > 0 {
			o.release(sd, true)
		}
	}
	if o.nHeld > 0 && !o.ended {
		o.timer.Reset(o.wait / 4)
	}
}

// pause holds nothing past a gap until resume, and drops what is held:
// the connection is lost, and the consumer is reset once it is back,
// so that everything unacknowledged comes again, in the order of the
// stream.
func (o *jsOrder) pause() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paused = true
	for _, sd := range o.senders {
		sd.held = nil
	}
	o.nHeld = 0
}

// resume undoes pause.
func (o *jsOrder) resume() {
	o.mu.Lock()
	o.paused = false
	o.mu.Unlock()
}

// stop delivers what is held, in order, and holds nothing from then on:
// the consumer has stopped, and no redelivery will come to this link.
// With giveBack (a link that takes over consumes the same durable), what
// is held waits for messages that have not come: it is given back
// instead (Nak), undelivered, and comes again to that link after them,
// in the order of the stream.
func (o *jsOrder) stop(giveBack bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = true
	if giveBack {
		for _, sd := range o.senders {
			for _, h := range sd.held {
				h.m.Nak()
			}
			sd.held = nil
		}
		o.nHeld = 0
	} else {
		o.releaseAll()
	}
	if o.timer != nil {
		o.timer.Stop()
	}
}

// handOver makes to, whose consumer has not started, go on from the
// senders' state of o, which has stopped: nothing is held.
func (o *jsOrder) handOver(to *jsOrder) {
	o.mu.Lock()
	senders := make(map[jsKey]*jsSender, len(o.senders))
	for key, sd := range o.senders {
		senders[key] = &jsSender{next: sd.next, base: sd.base, used: sd.used, gaps: slices.Clone(sd.gaps), below: slices.Clone(sd.below)}
	}
	takes := o.takes
	o.mu.Unlock()
	to.mu.Lock()
	to.senders, to.takes = senders, takes
	to.mu.Unlock()
}

// deliver hands m to the handler, and acknowledges it, or gives it back.
func (o *jsOrder) deliver(m jetstream.Msg) {
	o.count(m)
	if o.handle(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}) {
		m.Ack()
		return
	}
	m.Nak()
	if md, err := m.Metadata(); err == nil {
		// Rare, and what the next consumer gets first: the sequence
		// tells which event, should one come late.
		o.log.Debug("gave an event back to JetStream: the link delivers no more",
			"subject", m.Subject(), "stream_seq", md.Sequence.Stream)
	}
}

// jsNumbering reads a message's numbering: its sender's key, and the
// numbers of its events, [first, end).
func jsNumbering(m jetstream.Msg) (key jsKey, first, end uint64, ok bool) {
	h := m.Headers()
	v := h[HeaderSeq]
	if len(v) != 1 {
		return jsKey{}, 0, 0, false
	}
	s, ok := seqOf(v[0])
	if !ok {
		return jsKey{}, 0, 0, false
	}
	n := uint64(1)
	if p := h.Get(HeaderPack); p != "" {
		k, err := strconv.ParseUint(p, 10, 32)
		if err != nil || k == 0 {
			return jsKey{}, 0, 0, false
		}
		n = k
	}
	return jsKey{m.Subject(), s.epoch}, s.first, s.first + n, true
}
