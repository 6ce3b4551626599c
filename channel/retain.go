package channel

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// Retain bounds the ring of recent events a channel keeps, so that a
// client that reconnects gets what it missed (PROTOCOL.md § 5.2): an
// event leaves the ring once the events after it hold Bytes, or once it
// is older than Age. Either one 0 keeps nothing.
type Retain struct {
	Bytes int
	Age   time.Duration
}

func (r Retain) on() bool { return r.Bytes > 0 && r.Age > 0 }

// retainedCost is what one retained event costs beside its frame's
// buffer: its entry in the ring.
const retainedCost = int(unsafe.Sizeof(retained{}))

// maxTomb is how many ids of evicted events a ring remembers, so that a
// client whose last event has just been evicted is told exactly how
// many it missed.
const maxTomb = 4096

// retained is one event of the ring.
type retained struct {
	seq        uint64
	at         time.Duration // when it entered, in monoNow nanoseconds; never before the entry ahead of it
	id, sender [16]byte
	frame      []byte    // never modified
	ref        *frameBuf // the pooled buffer of frame, of which the ring holds a reference; nil when the GC owns frame
	cost       int       // what the entry counts against the ring's limit
}

// ring is a channel's retained events, oldest first, numbered by seq
// from 1 in the order they were fanned out. mu is held across each
// event's fan-out (Channel.SendEvent), so that the ring's order is the
// order in which every client's queue got the events, and a client that
// registers under mu (addReceiver) gets by its queue exactly the events
// numbered from its start on, and from the ring the ones before.
type ring struct {
	on      atomic.Bool // limit.on(), read without the lock: a channel that retains nothing takes no lock per event
	mu      sync.Mutex
	limit   Retain
	epoch   uuid.UUID     // drawn when the channel opens
	last    time.Duration // the at of the newest entry
	entries []retained    // entries[head:] are held
	head    int
	run     slabRun // of the entries that lie in a NATS pack's body
	size    int     // the cost of the held entries, frames and retainedCost
	next    uint64  // the seq of the next event
	evicted uint64  // events evicted since the channel opened
	// tomb holds the ids of the last evicted events, a circle of
	// tombN entries whose oldest is at tombAt-tombN (mod maxTomb):
	// their seqs are first-tombN to first-1.
	tomb   [][16]byte
	tombN  int
	tombAt int

	replayed uint64 // events sent to resuming clients
	missed   uint64 // events resuming clients missed for good
}

func (r *ring) init(limit Retain) {
	r.limit, r.epoch, r.next = limit, uuid.New(), 1
	r.on.Store(limit.on())
}

// SetRetain changes what the channel keeps, from the next event on;
// Retain{} keeps nothing and empties the ring.
func (ch *Channel) SetRetain(limit Retain) {
	r := &ch.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limit = limit
	r.on.Store(limit.on())
	r.trim(r.now())
}

// addReceiver makes a new connection a receiver, and records from which
// event on its queue gets every event: those before it can only come
// from the ring. ch.mu is held.
func (ch *Channel) addReceiver(c *Conn) {
	ch.ring.mu.Lock()
	ch.addLocked(c)
	c.retainFrom = ch.ring.next
	c.retainAfter, _ = ch.ring.idOf(ch.ring.next - 1) // held: the newest
	ch.ring.mu.Unlock()
}

// retain keeps e in the ring and reports whether it did, in which case
// the ring's lock is held until the caller has fanned e out and called
// ring.mu.Unlock.
func (ch *Channel) retain(e *Event) bool {
	r := &ch.ring
	if !r.on.Load() {
		return false
	}
	r.mu.Lock()
	if !r.limit.on() {
		r.mu.Unlock()
		return false
	}
	if e.Header.Event == nil {
		// A frame given to Send: its header is not parsed yet (a parsed
		// one has a name of at least one byte).
		hdr, err := wire.ParseEvent(e.frame[wire.HeaderLen:])
		if err != nil {
			r.mu.Unlock()
			return false
		}
		e.Header = hdr
	}
	if e.Header.To != ([16]byte{}) {
		// An addressed event (a reply) concerns one client, and is never
		// replayed.
		r.mu.Unlock()
		return false
	}
	if e.ref != nil {
		e.taken++ // the ring's reference, settled with the queues'
	}
	now := r.last
	if e.at > int64(now) {
		now = time.Duration(e.at) // when it was read, at most one read's parsing ago
	} else if e.at == 0 {
		now = max(now, time.Duration(monoNow()))
	}
	r.last = now
	slab := e.slab
	if e.ref != nil {
		slab = nil
	}
	if ended, sparse := r.run.next(slab, e.slabCap, len(e.frame), false); sparse {
		r.unpin(&ended)
	}
	cost := entryCost(e.frame, e.ref) + retainedCost
	r.entries = append(r.entries, retained{seq: r.next, at: now, id: e.Header.ID, sender: e.Header.Sender,
		frame: e.frame, ref: e.ref, cost: cost})
	r.next++
	r.size += cost
	r.trim(now)
	return true
}

// unpin copies the entries of run's slab that the ring still holds out
// of it, run having taken less than half of the slab (slabRun); r.mu is
// held.
func (r *ring) unpin(run *slabRun) {
	for i := max(r.head, len(r.entries)-run.span); i < len(r.entries); i++ {
		en := &r.entries[i]
		if en.ref != nil || !run.contains(en.frame) {
			continue
		}
		old := en.frame
		en.frame, en.ref = queuedCopy(old)
		extra := entryCost(en.frame, en.ref) - (len(old) + entryOverhead)
		en.cost += extra
		r.size += extra
	}
}

// now is the ring's clock: monoNow, and never before its newest entry.
func (r *ring) now() time.Duration {
	r.last = max(r.last, time.Duration(monoNow()))
	return r.last
}

// trim evicts what is past the limits at time now; r.mu is held.
func (r *ring) trim(now time.Duration) {
	for r.head < len(r.entries) {
		old := &r.entries[r.head]
		if r.limit.on() && r.size <= r.limit.Bytes && now-old.at <= r.limit.Age {
			break
		}
		r.size -= old.cost
		r.bury(old.id)
		if old.ref != nil {
			old.ref.release()
		}
		*old = retained{}
		r.head++
		r.evicted++
	}
	if r.head >= 64 && 2*r.head >= len(r.entries) {
		n := copy(r.entries, r.entries[r.head:])
		clear(r.entries[n:])
		r.entries, r.head = r.entries[:n], 0
	}
	if r.head == len(r.entries) {
		r.run = slabRun{} // nor a slab
		if cap(r.entries) > 1024 {
			r.entries, r.head = nil, 0 // an idle channel gives its memory back
		}
	}
}

func (r *ring) bury(id [16]byte) {
	if r.tomb == nil {
		r.tomb = make([][16]byte, maxTomb)
	}
	r.tomb[r.tombAt] = id
	r.tombAt = (r.tombAt + 1) % maxTomb
	r.tombN = min(r.tombN+1, maxTomb)
}

// first is the seq of the oldest event held (next when none is).
func (r *ring) first() uint64 { return r.next - uint64(len(r.entries)-r.head) }

// idOf returns the id of event seq, if the ring holds it or remembers
// it; seq 0 is the ring's start, whose id is zero.
func (r *ring) idOf(seq uint64) ([16]byte, bool) {
	first := r.first()
	switch {
	case seq == 0:
		return [16]byte{}, true
	case seq >= first && seq < r.next:
		return r.entries[r.head+int(seq-first)].id, true
	case seq < first && first-seq <= uint64(r.tombN):
		back := int(first - seq) // 1 is the newest buried
		return r.tomb[(r.tombAt-back+maxTomb)%maxTomb], true
	}
	return [16]byte{}, false
}

// seqOf finds the seq of event id, held or remembered, searching from the
// newest: resuming is rare, and a map kept for it would cost every event.
func (r *ring) seqOf(id [16]byte) (uint64, bool) {
	first := r.first()
	for i := len(r.entries) - 1; i >= r.head; i-- {
		if r.entries[i].id == id {
			return r.entries[i].seq, true
		}
	}
	for back := 1; back <= r.tombN; back++ {
		if r.tomb[(r.tombAt-back+maxTomb)%maxTomb] == id {
			return first - uint64(back), true
		}
	}
	return 0, false
}

// replay is what a connection is sent between its Welcome and its first
// live event.
type replay struct {
	frames [][]byte
	refs   []*frameBuf // refs[i] is the buffer of frames[i], of which the replay holds a reference; nil when the GC owns it
	from   [16]byte    // the Welcome's From
	missed uint64
}

// resume works out what the client of hello h, whose queue holds every
// event from seq upTo on, is sent from the ring, and where it then
// stands. It reports false when the channel retains nothing: the
// Welcome then has no resume fields.
func (ch *Channel) resume(h *wire.Hello, upTo uint64, upToAfter [16]byte, f *filter) (replay, bool) {
	r := &ch.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.limit.on() {
		return replay{}, false
	}
	now := r.now()
	r.trim(now)
	first := r.first()
	start, counted := upTo, false // the first seq to send; whether a gap counts as missed
	switch {
	case h.Resume.Epoch == r.epoch && h.Resume.After == [16]byte{}:
		start, counted = 1, true
	case h.Resume.Epoch == r.epoch:
		if seq, ok := r.seqOf(h.Resume.After); ok {
			start, counted = seq+1, true
		} else {
			// Older than anything remembered: at least the remembered
			// evictions were missed.
			start, counted = first-uint64(r.tombN), true
			start = max(start, 1)
		}
	case !h.Resume.IsZero():
		// Another ring: one that opened after the client's cursor (a
		// restarted server), so everything in it is news to the client.
		start, counted = 1, true
	case h.Since > 0:
		cutoff := now - time.Duration(h.Since)*time.Millisecond
		start = upTo
		for i := len(r.entries) - 1; i >= r.head && r.entries[i].at >= cutoff; i-- {
			start = r.entries[i].seq
		}
	}
	start = min(start, upTo)
	var out replay
	if start < first {
		// Evicted: those before upTo are missed; those from upTo on, if
		// any, were fanned out after the connection was accepted, and
		// are in its queue.
		if counted {
			out.missed = min(first, upTo) - start
		}
		start = first
	}
	// From is the event right before what the client is sent next: the
	// ring's events from start, or, when the ring no longer holds those
	// before upTo, its queue's. The event before upTo was the newest
	// when the connection was accepted (upToAfter): the ring may have
	// forgotten even its id since.
	if start < upTo {
		out.from, _ = r.idOf(start - 1)
	} else {
		out.from = upToAfter
	}
	own := func(sender [16]byte) bool {
		if sender == h.ClientID {
			return true
		}
		for _, id := range h.Own {
			if id == sender {
				return true
			}
		}
		return false
	}
	for seq := start; seq < upTo; seq++ {
		e := &r.entries[r.head+int(seq-first)]
		switch {
		case own(e.sender):
		case !retainedWanted(f, e):
			ch.filtered.Add(1)
		default:
			if e.ref != nil {
				e.ref.refs.Add(1) // the ring holds one, so the buffer is live
			}
			out.frames = append(out.frames, e.frame)
			out.refs = append(out.refs, e.ref)
		}
	}
	r.replayed += uint64(len(out.frames))
	r.missed += out.missed
	return out, true
}

// retainedWanted reports whether a retained event passes the filter f
// of a client that resumes (nil: every event). Retained events are never
// addressed (retain), so the name decides.
func retainedWanted(f *filter, e *retained) bool {
	if f == nil {
		return true
	}
	h, err := wire.ParseEvent(e.frame[wire.HeaderLen:])
	return err != nil || f.wants(h.Event)
}

// releaseRing empties the ring, giving its buffers back; the channel has
// shut down.
func (ch *Channel) releaseRing() {
	ch.SetRetain(Retain{})
}

// retainStats fills in the ring's part of st.
func (ch *Channel) retainStats(st *Stats) {
	r := &ch.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trim(r.now())
	st.Retained = len(r.entries) - r.head
	st.RetainedBytes = r.size
	st.Evicted = r.evicted
	st.Replayed = r.replayed
	st.Missed = r.missed
}

// resumeWelcome fills in the resume fields of the Welcome w for the
// client of hello h, when both speak version 3 and the channel retains
// events, and returns what the client is sent between the Welcome and
// its first live event.
func (c *Conn) resumeWelcome(h *wire.Hello, w *wire.Welcome, f *filter) replay {
	if w.Version < wire.ResumeVersion {
		return replay{}
	}
	rp, ok := c.ch.resume(h, c.retainFrom, c.retainAfter, f)
	if !ok {
		return replay{}
	}
	w.Epoch, w.From, w.Missed = c.ch.ring.epoch, rp.from, rp.missed
	for _, f := range rp.frames {
		c.ch.framesOut.Add(1)
		c.ch.bytesOut.Add(uint64(len(f)))
	}
	if rp.missed > 0 {
		c.logger().Info("client resumed past the retained events", "missed", rp.missed, "replayed", len(rp.frames))
	} else if len(rp.frames) > 0 {
		c.logger().Debug("client resumed", "replayed", len(rp.frames))
	}
	return rp
}
