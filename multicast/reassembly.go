package multicast

import (
	"container/list"
	"time"

	"github.com/google/uuid"
)

// Reassembly costs. Each incomplete message is charged its fragments'
// bytes plus these, so that a flood of tiny fragments of huge messages is
// bounded like one of big fragments.
const (
	partialOverhead = 256 // the partial struct, its map entry and list element
	slotOverhead    = 24  // one fragment slot (a slice header)
)

// contiguousMax is the largest message whose fragments are kept in one
// buffer of its length, allocated, and charged, at its first fragment:
// when they then arrive in order, as they do on a LAN, that buffer is the
// message, with no copy to join them. Larger messages get a buffer per
// fragment, charged as it arrives, so that a stray first fragment of a
// huge message costs only its own bytes.
const contiguousMax = 64 << 10

// msgKey names a message being reassembled: ids are chosen by senders, so
// the sender's node id is part of the key.
type msgKey struct{ node, id uuid.UUID }

// partial is a message whose fragments are arriving.
type partial struct {
	key     msgKey
	count   int
	total   int
	got     int // fragments received
	size    int // their bytes
	cost    int // what the message is charged against the budget
	started time.Time
	frags   [][]byte
	elem    *list.Element
	// buf, for a message of at most contiguousMax bytes, holds the
	// fragments in arrival order, frags pointing into it; inOrder stays
	// true while each fragment arrives with the next index.
	buf     []byte
	inOrder bool
}

// outcome is what adding one fragment did.
type outcome int

const (
	fragPending   outcome = iota // kept, the message is not complete yet
	fragComplete                 // the message is complete
	fragDuplicate                // this fragment was already held
	fragBad                      // it contradicts the message's other fragments
	fragNoRoom                   // the message alone would pass the budget
)

// reassembler joins fragments into messages within a memory budget.
// Incomplete messages older than timeout expire, and when a fragment
// would pass the budget the oldest incomplete messages are evicted. It is
// not safe for concurrent use.
type reassembler struct {
	budget  int
	timeout time.Duration

	msgs  map[msgKey]*partial
	order list.List // of *partial, oldest first
	bytes int       // charged now
	peak  int       // most ever charged

	expired, evicted uint64
	// toldExpired and toldEvicted are the totals untold last returned.
	toldExpired, toldEvicted uint64
}

// untold returns the incomplete messages expired and evicted since it
// last returned, and the totals.
func (ra *reassembler) untold() (expired, evicted, expiredTotal, evictedTotal uint64) {
	expired, evicted = ra.expired-ra.toldExpired, ra.evicted-ra.toldEvicted
	ra.toldExpired, ra.toldEvicted = ra.expired, ra.evicted
	return expired, evicted, ra.expired, ra.evicted
}

func newReassembler(budget int, timeout time.Duration) *reassembler {
	return &reassembler{budget: budget, timeout: timeout, msgs: make(map[msgKey]*partial)}
}

// add files one fragment of a message from node. r must have passed
// Record.check; its payload is copied. When the message is complete, add
// returns it with fragComplete; a single-fragment message is returned as
// r.Payload itself.
func (ra *reassembler) add(node uuid.UUID, r *Record, now time.Time) ([]byte, outcome) {
	if r.Count == 1 {
		return r.Payload, fragComplete
	}
	key := msgKey{node, r.ID}
	p := ra.msgs[key]
	if p == nil {
		cost := partialOverhead + slotOverhead*r.Count
		if cost+r.Total > ra.budget {
			return nil, fragNoRoom
		}
		p = &partial{key: key, count: r.Count, total: r.Total, started: now, frags: make([][]byte, r.Count)}
		if r.Total <= contiguousMax {
			cost += r.Total
			p.buf, p.inOrder = make([]byte, 0, r.Total), true
			ra.makeRoom(cost, nil)
		} else {
			ra.makeRoom(cost+len(r.Payload), nil)
		}
		p.cost = cost
		p.elem = ra.order.PushBack(p)
		ra.msgs[key] = p
		ra.charge(cost)
	}
	switch {
	case p.count != r.Count || p.total != r.Total:
		return nil, fragBad
	case p.frags[r.Index] != nil:
		return nil, fragDuplicate
	case p.size+len(r.Payload) > p.total:
		ra.remove(p)
		return nil, fragBad
	}
	if p.buf != nil {
		// Charged in full already; size+len <= total == cap(buf), so
		// the append stays in place.
		p.inOrder = p.inOrder && r.Index == p.got
		start := len(p.buf)
		p.buf = append(p.buf, r.Payload...)
		p.frags[r.Index] = p.buf[start:]
	} else {
		if !ra.makeRoom(len(r.Payload), p) {
			ra.remove(p)
			ra.evicted++
			return nil, fragNoRoom
		}
		p.frags[r.Index] = append([]byte(nil), r.Payload...)
		p.cost += len(r.Payload)
		ra.charge(len(r.Payload))
	}
	p.got++
	p.size += len(r.Payload)
	if p.got < p.count {
		return nil, fragPending
	}
	ra.remove(p)
	if p.size != p.total {
		return nil, fragBad
	}
	if p.inOrder {
		return p.buf, fragComplete
	}
	msg := make([]byte, 0, p.total)
	for _, f := range p.frags {
		msg = append(msg, f...)
	}
	return msg, fragComplete
}

func (ra *reassembler) charge(n int) {
	ra.bytes += n
	ra.peak = max(ra.peak, ra.bytes)
}

// makeRoom evicts the oldest incomplete messages other than keep until n
// more bytes fit the budget, and reports whether they do.
func (ra *reassembler) makeRoom(n int, keep *partial) bool {
	for ra.bytes+n > ra.budget {
		e := ra.order.Front()
		if e != nil && e.Value.(*partial) == keep {
			e = e.Next()
		}
		if e == nil {
			return false
		}
		ra.remove(e.Value.(*partial))
		ra.evicted++
	}
	return true
}

func (ra *reassembler) remove(p *partial) {
	ra.order.Remove(p.elem)
	delete(ra.msgs, p.key)
	ra.bytes -= p.cost
}

// expire drops the incomplete messages older than the timeout.
func (ra *reassembler) expire(now time.Time) {
	for e := ra.order.Front(); e != nil; e = ra.order.Front() {
		p := e.Value.(*partial)
		if now.Sub(p.started) < ra.timeout {
			return
		}
		ra.remove(p)
		ra.expired++
	}
}

// pending is how many incomplete messages are held.
func (ra *reassembler) pending() int { return len(ra.msgs) }
