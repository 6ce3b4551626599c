package multicast

import (
	"net/netip"
	"sort"
	"time"

	"github.com/google/uuid"
)

// Order and gaps. Each peer's stream 0 (its data and heartbeats) is
// handled in sequence order: a datagram that arrives ahead of a missing
// one is held until the missing one arrives, is repaired, or is skipped.
// A window per peer keeps what it needs for that:
//
//   - next: the first sequence number not handled or skipped yet;
//   - high: the highest one known to exist;
//   - held: the datagrams of (next, high] that arrived, copied;
//   - gaps: the sequence numbers of [next, high] that did not, as sorted,
//     disjoint ranges, each with when it was found and when to NAK it
//     next.
//
// Every number of [next, high] is either held or in a gap. A gap is
// skipped when it is older than the gap timeout, when its sender says it
// no longer holds it, when the hold buffer is full (oldest gap first), or
// when the peer falls silent; skipped numbers are counted as lost. A new
// peer's window starts at the first datagram heard from it: nothing from
// before is asked for.

// heldOverhead is what each held datagram is charged beyond its bytes.
const heldOverhead = 64

// Defaults of the receiver's repair timing.
const (
	// DefaultGapTimeout is how long a gap is waited for before it is
	// skipped.
	DefaultGapTimeout = 2 * time.Second
	// defaultNAKDelay is how long a new gap waits before its first NAK:
	// datagrams may arrive out of order.
	defaultNAKDelay = 10 * time.Millisecond
	// maxNAKBackoff bounds the wait between two NAKs of one gap.
	maxNAKBackoff = 250 * time.Millisecond
	// episodeQuiet is how long a peer's stream must go without a skip
	// for its loss episode to end (and be logged as ended).
	episodeQuiet = 5 * time.Second
	// DefaultHoldPeer and DefaultHoldTotal bound the bytes held out of
	// order, per peer and for all peers.
	DefaultHoldPeer  = 8 << 20
	DefaultHoldTotal = 32 << 20
)

// skipReason says why a gap was skipped.
type skipReason uint8

const (
	skipNone    skipReason = iota
	skipTimeout            // not repaired within the gap timeout
	skipGone               // the sender no longer holds it
	skipFull               // the hold buffer was full
	skipSilent             // the peer fell silent
)

func (r skipReason) String() string {
	switch r {
	case skipTimeout:
		return "not repaired within gaptimeout"
	case skipGone:
		return "the sender no longer holds it"
	case skipFull:
		return "the hold buffer is full"
	case skipSilent:
		return "the peer fell silent"
	}
	return "not skipped"
}

// gap is a range of a peer's stream 0 that has not arrived.
type gap struct {
	SeqRange
	since time.Time  // when it was found
	nakAt time.Time  // when to NAK it next
	naks  int        // NAKs sent for it
	skip  skipReason // set: skip it when its turn comes
}

// window is one peer's place in its stream 0.
type window struct {
	node       uuid.UUID
	next, high uint64
	reported   uint64 // the position last reported in a status (report.go)
	held       map[uint64][]byte
	heldBytes  int
	gaps       []gap
	lost       uint64 // skipped
	repaired   uint64 // arrived in a repair, after their gap was found
	lastSeen   time.Time
	from       netip.AddrPort // where its last datagram came from
	// episode is set from the first skip on until the stream has gone
	// episodeQuiet without one; episodeLost counts what it skipped.
	episode     bool
	episodeLost uint64
	lastSkip    time.Time
}

// orderLog is a line to log once the link's lock is released: the start
// or the end of a peer's loss episode.
type orderLog struct {
	node   uuid.UUID
	start  bool
	r      SeqRange
	reason skipReason
	lost   uint64
}

// nakReq asks node for ranges.
type nakReq struct {
	node   uuid.UUID
	ranges []SeqRange
}

// inTurnFunc handles a datagram of node's stream 0 when its turn comes,
// in sequence order. h and recs are its header and records, or nil when
// the callee must decode d, which is then a datagram that passed the
// checks before (one that was held).
type inTurnFunc func(node uuid.UUID, h *Header, d []byte, recs []Record)

// arrival is a datagram of a peer's stream 0 as it reaches the orderer.
type arrival struct {
	node   uuid.UUID
	seq    uint64
	h      *Header  // its header, or nil (see inTurnFunc)
	d      []byte   // the datagram, copied if it is held
	recs   []Record // its records, or nil (see inTurnFunc)
	repair bool     // it came inside a repair, not by itself
	from   netip.AddrPort
}

// arrivalResult is what arrive did with a datagram.
type arrivalResult int

const (
	arrivalTaken     arrivalResult = iota // handled in its turn, or held for it
	arrivalDuplicate                      // handled, skipped or held already
	arrivalUnordered                      // the window table is full: the caller handles it out of order
	arrivalUnknown                        // a repair for a peer without a window: ignore it
	// arrivalUnplaced: a number of (next, high] neither held nor in a
	// gap, which cannot happen; the caller counts it, as the datagram
	// is dropped.
	arrivalUnplaced
)

// orderer keeps the windows of all peers within the hold bounds, and
// hands each peer's datagrams to inTurn in sequence order. It is not safe
// for concurrent use.
type orderer struct {
	wins                map[uuid.UUID]*window
	inTurn              inTurnFunc
	holdPeer, holdTotal int
	gapTimeout          time.Duration
	nakDelay            time.Duration
	maxRanges           int // per NAK

	held, peak                      int
	lost, repaired, outOfOrder, dup uint64
	suppressed                      uint64 // gaps whose NAK waited for another receiver's
	newGap                          bool   // a gap was found since the flag was cleared
	logs                            []orderLog
}

func newOrderer(inTurn inTurnFunc, holdPeer, holdTotal int, gapTimeout, nakDelay time.Duration, maxRanges int) *orderer {
	return &orderer{wins: make(map[uuid.UUID]*window), inTurn: inTurn, holdPeer: holdPeer, holdTotal: holdTotal,
		gapTimeout: gapTimeout, nakDelay: nakDelay, maxRanges: max(1, min(MaxRecords, maxRanges))}
}

// arrive takes datagram a of its peer's stream 0: it hands it to inTurn
// (and then what was held behind it) if it is next, holds it if it is
// ahead of a gap, and counts it if it is a duplicate.
func (o *orderer) arrive(a *arrival, now time.Time) arrivalResult {
	w := o.wins[a.node]
	if w == nil {
		if a.repair {
			return arrivalUnknown
		}
		if len(o.wins) >= maxPeers {
			return arrivalUnordered
		}
		w = &window{node: a.node, next: a.seq, high: a.seq - 1, held: make(map[uint64][]byte)}
		o.wins[a.node] = w
	}
	w.lastSeen = now
	if !a.repair {
		w.from = a.from
	}
	if res := o.place(w, a, now); res != arrivalTaken {
		return res
	}
	seq := a.seq
	if seq != w.next {
		if !a.repair {
			o.outOfOrder++
		}
		cost := len(a.d) + heldOverhead
		o.makeRoom(w, seq, cost, now)
		if seq != w.next {
			w.held[seq] = append([]byte(nil), a.d...)
			w.heldBytes += cost
			o.held += cost
			o.peak = max(o.peak, o.held)
			return arrivalTaken
		}
	}
	w.next++
	o.inTurn(a.node, a.h, a.d, a.recs)
	o.advance(w, now)
	return arrivalTaken
}

// place finds a's number a place in w: it fills the gap that holds it,
// or it raises w.high past it, opening a gap for what lies between, and
// reports arrivalTaken. It reports arrivalDuplicate, counting it, for a
// number w has had already, and arrivalUnplaced for one it finds in
// neither.
func (o *orderer) place(w *window, a *arrival, now time.Time) arrivalResult {
	seq := a.seq
	switch {
	case seq < w.next || seq <= w.high && w.holds(seq):
		if !a.repair {
			o.dup++
		}
		return arrivalDuplicate
	case seq <= w.high:
		if !w.fill(seq) {
			return arrivalUnplaced // cannot happen: every number is held or in a gap
		}
		if a.repair {
			w.repaired++
			o.repaired++
		}
	default: // seq > high
		if seq > w.high+1 {
			w.gaps = append(w.gaps, gap{SeqRange: SeqRange{w.high + 1, seq - 1}, since: now, nakAt: now.Add(o.nakDelay)})
			o.newGap = true
		}
		w.high = seq
	}
	return arrivalTaken
}

// holds reports whether w holds datagram seq.
func (w *window) holds(seq uint64) bool {
	_, ok := w.held[seq]
	return ok
}

// fill takes seq out of the gap that holds it and reports whether one
// did.
func (w *window) fill(seq uint64) bool {
	i := sort.Search(len(w.gaps), func(i int) bool { return w.gaps[i].Last >= seq })
	if i == len(w.gaps) || w.gaps[i].First > seq {
		return false
	}
	g := w.gaps[i]
	switch {
	case g.First == seq && g.Last == seq:
		w.gaps = append(w.gaps[:i], w.gaps[i+1:]...)
	case g.First == seq:
		w.gaps[i].First++
	case g.Last == seq:
		w.gaps[i].Last--
	default:
		after := g
		after.First = seq + 1
		w.gaps[i].Last = seq - 1
		w.gaps = append(w.gaps, gap{})
		copy(w.gaps[i+2:], w.gaps[i+1:])
		w.gaps[i+1] = after
	}
	return true
}

// makeRoom skips the oldest gaps, of w and then of the peer holding the
// most, until cost more bytes fit both hold bounds, or until w's next
// datagram is seq (which is then handed on, not held).
func (o *orderer) makeRoom(w *window, seq uint64, cost int, now time.Time) {
	for w.heldBytes+cost > o.holdPeer && w.next != seq && len(w.gaps) > 0 {
		o.skipFirst(w, skipFull, now)
	}
	for o.held+cost > o.holdTotal && w.next != seq {
		var fat *window
		for _, v := range o.wins {
			if len(v.gaps) > 0 && (fat == nil || v.heldBytes > fat.heldBytes) {
				fat = v
			}
		}
		if fat == nil {
			return
		}
		o.skipFirst(fat, skipFull, now)
	}
}

// skipFirst skips w's first gap, which starts at w.next, and hands on
// what was held behind it.
func (o *orderer) skipFirst(w *window, why skipReason, now time.Time) {
	if w.gaps[0].skip == skipNone {
		w.gaps[0].skip = why
	}
	o.advance(w, now)
}

// advance hands inTurn w's held datagrams and skips its skipped gaps, in
// order, for as long as one of them is next.
func (o *orderer) advance(w *window, now time.Time) {
	for {
		if d, ok := w.held[w.next]; ok {
			delete(w.held, w.next)
			cost := len(d) + heldOverhead
			w.heldBytes -= cost
			o.held -= cost
			w.next++
			o.inTurn(w.node, nil, d, nil)
			continue
		}
		if len(w.gaps) > 0 && w.gaps[0].First == w.next && w.gaps[0].skip != skipNone {
			g := w.gaps[0]
			n := g.Len()
			w.lost += n
			o.lost += n
			if !w.episode {
				w.episode, w.episodeLost = true, 0
				o.logs = append(o.logs, orderLog{node: w.node, start: true, r: g.SeqRange, reason: g.skip})
			}
			w.episodeLost += n
			w.lastSkip = now
			w.next = g.Last + 1
			w.gaps = append(w.gaps[:0], w.gaps[1:]...)
			continue
		}
		return
	}
}

// gone skips what r covers of node's gaps: its sender no longer holds it.
func (o *orderer) gone(node uuid.UUID, r SeqRange, now time.Time) {
	w := o.wins[node]
	if w == nil || r.Last < w.next || r.First > w.high {
		return
	}
	var out []gap
	for _, g := range w.gaps {
		if g.Last < r.First || g.First > r.Last || g.skip != skipNone {
			out = append(out, g)
			continue
		}
		if g.First < r.First {
			before := g
			before.Last = r.First - 1
			out = append(out, before)
		}
		mid := g
		mid.First, mid.Last = max(g.First, r.First), min(g.Last, r.Last)
		mid.skip = skipGone
		out = append(out, mid)
		if g.Last > r.Last {
			after := g
			after.First = r.Last + 1
			out = append(out, after)
		}
	}
	w.gaps = out
	o.advance(w, now)
}

// heard takes note of a NAK that another receiver sent to node for
// ranges: the repair will reach this receiver too, so its own NAKs for
// gaps that one of the ranges covers wait as if it had sent it.
func (o *orderer) heard(node uuid.UUID, ranges []SeqRange, now time.Time) {
	w := o.wins[node]
	if w == nil {
		return
	}
	for i := range w.gaps {
		g := &w.gaps[i]
		if g.skip != skipNone {
			continue
		}
		for _, r := range ranges {
			if r.First <= g.First && g.Last <= r.Last {
				g.nakAt = latest(g.nakAt, now.Add(min(maxNAKBackoff, o.nakDelay<<min(g.naks+1, 10))))
				o.suppressed++
				break
			}
		}
	}
}

// latest returns the later of two times.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pending reports whether tick has work: a gap, or a loss episode to
// end.
func (o *orderer) pending() bool {
	for _, w := range o.wins {
		if len(w.gaps) > 0 || w.episode {
			return true
		}
	}
	return false
}

// tick skips the gaps older than the gap timeout, ends quiet loss
// episodes, and returns the NAKs due now (at most maxRanges ranges per
// peer) and when tick has work next (zero: none).
func (o *orderer) tick(now time.Time) (naks []nakReq, due time.Time) {
	later := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	for _, w := range o.wins {
		for i := range w.gaps {
			if g := &w.gaps[i]; g.skip == skipNone && now.Sub(g.since) >= o.gapTimeout {
				g.skip = skipTimeout
			}
		}
		o.advance(w, now)
		var ranges []SeqRange
		for i := range w.gaps {
			g := &w.gaps[i]
			if g.skip != skipNone {
				continue
			}
			if !now.Before(g.nakAt) && len(ranges) < o.maxRanges {
				ranges = append(ranges, g.SeqRange)
				g.naks++
				g.nakAt = now.Add(min(maxNAKBackoff, o.nakDelay<<min(g.naks, 10)))
			}
			later(g.nakAt)
			later(g.since.Add(o.gapTimeout))
		}
		if len(ranges) > 0 {
			naks = append(naks, nakReq{node: w.node, ranges: ranges})
		}
		if w.episode {
			if len(w.gaps) == 0 && now.Sub(w.lastSkip) >= episodeQuiet {
				w.episode = false
				o.logs = append(o.logs, orderLog{node: w.node, lost: w.episodeLost})
			} else {
				later(w.lastSkip.Add(episodeQuiet))
			}
		}
	}
	return naks, due
}

// age drops the windows of peers silent for longer than timeout, after
// skipping their gaps and handing on what they held.
func (o *orderer) age(now time.Time, timeout time.Duration) {
	for node, w := range o.wins {
		if now.Sub(w.lastSeen) <= timeout {
			continue
		}
		for i := range w.gaps {
			if w.gaps[i].skip == skipNone {
				w.gaps[i].skip = skipSilent
			}
		}
		o.advance(w, now)
		if w.episode {
			o.logs = append(o.logs, orderLog{node: node, lost: w.episodeLost})
		}
		delete(o.wins, node)
	}
}

// touch notes that node was heard from, by a datagram of another
// stream: a sender held back by flow control sends no data for a while,
// but its statuses say it is alive.
func (o *orderer) touch(node uuid.UUID, now time.Time) {
	if w := o.wins[node]; w != nil {
		w.lastSeen = now
	}
}

// counts returns a peer's lost and repaired datagrams.
func (o *orderer) counts(node uuid.UUID) (lost, repaired uint64) {
	if w := o.wins[node]; w != nil {
		return w.lost, w.repaired
	}
	return 0, 0
}
