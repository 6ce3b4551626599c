package natslink

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/wire"
)

// receive returns the handler of a channel's subscription (node false)
// or of the node's (node true): see handler.
func (l *Link) receive(node bool, st *inState) nats.MsgHandler {
	h := l.handler(node, st)
	return func(m *nats.Msg) { h(m) }
}

// inState is what the handler of a numbered subscription keeps between
// messages: the numbering it follows, and, on a link that took over
// from another (CloseInto), the numbers up to which the other delivered.
// Its handler holds mu for each message, so that the link it hands over
// to reads seen whole.
type inState struct {
	mu   sync.Mutex
	seen seqSeen
	// floor is, per epoch, the first number the link taken over from
	// did not deliver: messages below it were, and are dropped here.
	// looked is set once floor is taken from the link (handedFloors).
	floor  map[string]uint64
	looked bool
}

// numbering is the numbering st follows; nil, none, when st is.
func (st *inState) numbering() seqSeen {
	if st == nil {
		return nil
	}
	return st.seen
}

// handedDup reports whether the n events numbered from s.first on were
// delivered already, by the link this one took over from.
func (st *inState) handedDup(l *Link, subject string, s seqNum, n uint64) bool {
	if st == nil || s.first == 0 {
		return false
	}
	if !st.looked {
		st.floor, st.looked = l.handedFloors(subject), true
	}
	f, ok := st.floor[s.epoch]
	if !ok {
		return false
	}
	if s.first+n <= f {
		return true
	}
	delete(st.floor, s.epoch) // past it: the numbering goes on as usual
	return false
}

// handler returns a function that decodes a message and delivers it,
// unless it is this node's own or the link is closed. It reports false
// when the link is closed: the message was not delivered, and one that
// can be had again (from JetStream) should be. nats.go calls a
// subscription's handler for one message at a time, so the handler
// decodes every message into the same Event, and every pack into the
// same slice. With st, it counts the events that the numbering of
// the messages (HeaderSeq) shows missing: a subscription hears every
// message published on its subject after it began, in order, unless one
// is lost; JetStream's redeliveries come out of order, and are not
// numbered so.
func (l *Link) handler(node bool, st *inState) func(*nats.Msg) bool {
	prefix := Subject(l.cfg.Prefix, l.cfg.Cluster, "")
	var ev Event
	var run []Event
	seen := st.numbering()
	var last *inbound // the sender's epoch last delivered (delivered)
	return func(m *nats.Msg) bool {
		// A link that takes over from another delivers once the other
		// has delivered all it took (Config.Held, CloseInto).
		if !l.inHeld.Wait(l.stop) {
			return false
		}
		if st != nil {
			st.mu.Lock()
			defer st.mu.Unlock()
		}
		if _, packed := m.Header[HeaderPack]; packed {
			return l.unpack(&run, m, prefix, node, st, &last)
		}
		ok := decode(&ev, m, prefix, node)
		if !ok {
			l.malformed.Add(1)
			l.log.Debug("dropped a malformed message from NATS", "subject", m.Subject)
			return true
		}
		if ev.Origin == l.cfg.Node {
			return true // ours, back through another connection of this server
		}
		l.deliverMu.RLock()
		defer l.deliverMu.RUnlock()
		if l.done {
			return false
		}
		seq := l.gap(seen, m, 1, ev.Origin)
		if st.handedDup(l, m.Subject, seq, 1) {
			return true
		}
		l.eventsIn.Add(1)
		l.peers.count(ev.Origin, 1, len(m.Data))
		l.deliver(&ev)
		if seq.first != 0 && !node {
			l.delivered(&last, m, seq, ev.Origin, 1)
		}
		return true
	}
}

// unpack delivers the events of a pack, as handler does: the pack's
// subject is a channel's, and each of its frames an event of that
// channel, addressed to nobody. It reads the frames into run, then hands
// them over together (Config.DeliverRun), or one by one. It stops at the
// first malformed frame, after which nothing can be read, counting the
// message malformed once; the events before it are delivered. seen
// follows the numbering, as in handler, and the pack's events are
// reported delivered (delivered, with last) once they are, malformed
// ones included: they will not come again.
func (l *Link) unpack(run *[]Event, m *nats.Msg, prefix string, node bool, st *inState, last **inbound) bool {
	if node || len(m.Subject) <= len(prefix) {
		l.malformed.Add(1)
		l.log.Debug("dropped a pack from NATS on a subject that is not a channel's", "subject", m.Subject)
		return true
	}
	channel := m.Subject[len(prefix):]
	evs := (*run)[:0]
	// The peers are counted once per run of events of one origin (a
	// pack's, as a rule), not once per event.
	var from struct {
		origin   uuid.UUID
		n, bytes int
	}
	var bad error
	ours := false
	for body := m.Data; len(body) > 0; {
		frame, hdr, rest, err := nextPacked(body)
		if err == nil && (string(hdr.Channel) != channel || hdr.To != ([16]byte{})) {
			err = fmt.Errorf("%w: an event of channel %q to %x in a pack of channel %q", errPack, wire.Clip(string(hdr.Channel), 64), hdr.To, channel)
		}
		if err != nil {
			bad = err
			break
		}
		body = rest
		if hdr.Origin == l.cfg.Node {
			ours = true
			continue // ours, back through another connection of this server
		}
		evs = append(evs, Event{Channel: channel, ID: hdr.ID, Origin: hdr.Origin, Sender: hdr.Sender, Data: hdr.Data,
			Frame: frame, Header: hdr, Pack: m.Data})
	}
	defer func() {
		clear(evs) // the frames are the receiver's: the slice keeps none
		*run = evs[:0]
	}()
	l.deliverMu.RLock()
	defer l.deliverMu.RUnlock()
	if l.done {
		return false
	}
	if bad != nil {
		l.malformed.Add(1)
		l.log.Debug("dropped the rest of a malformed pack from NATS", "subject", m.Subject, "err", bad)
	}
	var seq seqNum
	var packed uint64
	var origin uuid.UUID // a pack's events are its sender's
	if !ours {
		if n, err := strconv.ParseUint(m.Header.Get(HeaderPack), 10, 32); err == nil {
			if len(evs) > 0 {
				origin = evs[0].Origin
			}
			seq, packed = l.gap(st.numbering(), m, n, origin), n
			if st.handedDup(l, m.Subject, seq, n) {
				return true
			}
		}
	}
	if seq.first != 0 && origin != uuid.Nil {
		defer l.delivered(last, m, seq, origin, int(packed))
	}
	for i := range evs {
		ev := &evs[i]
		if from.origin != ev.Origin {
			l.peers.count(from.origin, from.n, from.bytes)
			from.origin, from.n, from.bytes = ev.Origin, 0, 0
		}
		from.n++
		from.bytes += len(ev.Data)
	}
	l.peers.count(from.origin, from.n, from.bytes)
	l.eventsIn.Add(uint64(len(evs)))
	if l.cfg.DeliverRun != nil {
		if len(evs) > 0 {
			l.cfg.DeliverRun(evs)
		}
		return true
	}
	for i := range evs {
		l.deliver(&evs[i])
	}
	return true
}

// gap notes a message of n events of origin in seen (nil: not
// numbered), and counts the events its number shows missing, for the
// link and for the peer origin, with a log at most once every
// slowLogEvery. It returns the message's number (HeaderSeq), zero when
// it is not numbered, or seen is nil.
func (l *Link) gap(seen seqSeen, m *nats.Msg, n uint64, origin uuid.UUID) seqNum {
	if seen == nil {
		return seqNum{}
	}
	v := m.Header[HeaderSeq]
	if len(v) != 1 {
		return seqNum{} // not numbered: a reply, a plain NATS program's event
	}
	s, ok := seqOf(v[0])
	if !ok {
		return seqNum{}
	}
	missed := seen.see(s, n)
	if missed == 0 {
		return s
	}
	total := l.missed.Add(missed)
	l.peers.missed(origin, missed)
	now, last := time.Now().UnixNano(), l.missedLogged.Load()
	if last != 0 && now-last < int64(slowLogEvery) || !l.missedLogged.CompareAndSwap(last, now) {
		return s
	}
	l.log.Warn("events from NATS never came: their sender's numbering skips them",
		"subject", m.Subject, "peer", origin, "missed", missed, "missed_in", total, "dropped_in", l.droppedIn())
	return s
}

// seqSeen follows the numbering (HeaderSeq) of the messages that one
// subscription receives: per epoch, the number it expects next.
type seqSeen map[string]uint64

// maxEpochs bounds a seqSeen: past it, it starts over, and the next
// message of each epoch only sets where it expects the next one.
const maxEpochs = 1024

// see notes a message of n events numbered v, and returns how many
// events the numbering skipped since the last message of its epoch. The
// first message of an epoch it hears of counts nothing missing, nor does
// one that comes after a later one: it was not lost.
func (s seqSeen) see(v seqNum, n uint64) uint64 {
	epoch, first := v.epoch, v.first
	end := first + n
	if first == 0 || n == 0 || end < first {
		return 0
	}
	next, known := s[epoch]
	switch {
	case !known:
		if len(s) >= maxEpochs {
			clear(s)
		}
		s[epoch] = end
	case first >= next:
		s[epoch] = end
		return first - next
	case end > next:
		s[epoch] = end
	}
	return 0
}

// decode reads an event from a message of a channel's subject, whose
// channel follows prefix, or of a node's subject (node true), which
// names its channel in a header, into ev.
func decode(ev *Event, m *nats.Msg, prefix string, node bool) bool {
	*ev = Event{Event: m.Header.Get(HeaderEvent), Data: m.Data}
	if node {
		ev.Channel = m.Header.Get(HeaderChannel)
	} else if len(m.Subject) > len(prefix) {
		ev.Channel = m.Subject[len(prefix):]
	}
	if ev.Event == "" || ev.Channel == "" {
		return false
	}
	ok := true
	id := func(name string, dst *uuid.UUID, made bool) {
		if s := m.Header.Get(name); s != "" {
			u, err := uuid.Parse(s)
			*dst, ok = u, ok && err == nil
		}
		// The zero id is a missing one: the dedup would drop every
		// event after the first with the same id, and a reply to the
		// zero sender would be an event for everyone.
		if made && *dst == uuid.Nil {
			*dst = uuid.New()
		}
	}
	id(HeaderID, &ev.ID, true)
	id(HeaderOrigin, &ev.Origin, false)
	// A sender the message does not name is made up, so that a reply
	// to it is addressed to nobody here rather than to everyone.
	id(HeaderSender, &ev.Sender, true)
	id(HeaderTo, &ev.To, false)
	if id(HeaderRe, &ev.Re, false); ev.To == uuid.Nil {
		ev.Re = uuid.Nil // only a reply answers a request, as Publish sends it
	}
	// Replies only on a node's subject, and only replies there.
	return ok && node == (ev.To != uuid.Nil)
}

// setPendingLimits applies Config.PendingMsgs and PendingBytes to a
// subscription of events.
func (l *Link) setPendingLimits(sub *nats.Subscription) {
	if l.cfg.PendingMsgs <= 0 && l.cfg.PendingBytes <= 0 {
		return
	}
	msgs, bytes := l.pendingLimits()
	if err := sub.SetPendingLimits(msgs, bytes); err != nil {
		l.log.Warn("setting the pending limits of a NATS subscription failed", "subject", sub.Subject, "err", err)
	}
}

// droppedIn is what the subscriptions of events dropped past their
// pending limits: the server did not take them as fast as NATS sent.
func (l *Link) droppedIn() uint64 {
	l.dropMu.Lock()
	defer l.dropMu.Unlock()
	n := l.droppedGone
	for _, sub := range l.eventSubs {
		if d, err := sub.Dropped(); err == nil {
			n += uint64(d)
		}
	}
	return n
}

// asyncError is nats.go's ErrorHandler. nats.go reports a subscription
// that drops past its pending limits at its first drop, and again at the
// first drop after it took a message: under a sustained overload, when
// the subscription hovers at its limit, dozens of times a second. The
// log says so at most once every slowLogEvery, with what was dropped so
// far; Stats.DroppedIn counts every drop.
func (l *Link) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	subj := ""
	if sub != nil {
		subj = sub.Subject
	}
	if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
		now, last := time.Now().UnixNano(), l.slowLogged.Load()
		if last != 0 && now-last < int64(slowLogEvery) || !l.slowLogged.CompareAndSwap(last, now) {
			return
		}
		msgs, bytes, _ := sub.PendingLimits()
		l.log.Warn("NATS sends faster than the server delivers: events past the subscription's pending limits are dropped",
			"subject", subj, "pending_msgs_limit", msgs, "pending_bytes_limit", bytes, "dropped_in", l.droppedIn())
		return
	}
	l.log.Warn("NATS reported an error", "subject", subj, "err", err)
}

// slowLogEvery is the least time between two logs of drops past the
// pending limits.
const slowLogEvery = 10 * time.Second
