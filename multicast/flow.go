package multicast

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Flow control, the sender's side. Receivers report, in status
// datagrams, how far they have got in this node's stream 0 (position)
// and how many datagrams past it they can take (window). With FlowMin,
// the writer sends a datagram of stream 0 only while its sequence number
// is within position + window of every live receiver: the slowest one
// sets the pace, as Aeron's "min" strategy does. A receiver is live from
// its first report that does not hold the sender back (a late joiner
// catches up by repair, or skips, on its own) until it has been silent
// for Config.PeerTimeout: then it leaves the calculation, counted in
// Stats.FlowExcluded and logged, so that one stopped host cannot stall
// the cluster. NAKs, repairs and statuses (stream 1) are never held back.

// FlowControl says which receivers hold a sender back.
type FlowControl string

const (
	// FlowMin keeps in flight at most the window of the slowest live
	// receiver: no receiver is outrun. The default.
	FlowMin FlowControl = "min"
	// FlowNone sends as fast as the link can: receivers that cannot keep
	// up lose what their socket buffer cannot hold, and repair it or skip
	// it. Receivers still report, and the history is still freed by what
	// they report.
	FlowNone FlowControl = "none"
)

// receiver is what a sender knows of one receiver of its stream 0.
type receiver struct {
	node     uuid.UUID
	pos      uint64 // the position it last reported
	win      uint32 // the window it last reported
	last     time.Time
	live     bool          // it counts in the calculation
	heldBack time.Duration // time the writer waited for it
}

// end is the highest sequence number the receiver can take, at most
// the largest there is.
func (r *receiver) end() uint64 {
	if r.pos > math.MaxUint64-uint64(r.win) {
		return math.MaxUint64
	}
	return r.pos + uint64(r.win)
}

// flowLog is a line to log outside the lock: a receiver that joined or
// left the calculation.
type flowLog struct {
	node    uuid.UUID
	joined  bool
	leaving bool // it left the cluster (leave), not silent for the timeout
	silent  time.Duration
}

// flow is a node's flow-control state: it outlives the node's links. It
// is safe for concurrent use.
type flow struct {
	mu      sync.Mutex
	mode    FlowControl
	timeout time.Duration
	rcv     map[uuid.UUID]*receiver
	// gone are the receivers that left the cluster (leave), and when:
	// a status of theirs that comes after, sent before they left, is
	// ignored for the timeout, or until they are heard again (back).
	gone map[uuid.UUID]time.Time
	// changed is closed, and replaced, when a report arrives: a writer
	// held back waits on it.
	changed  chan struct{}
	sent     uint64 // the highest sequence number of stream 0 written
	held     time.Duration
	excluded uint64
	logs     []flowLog
}

func newFlow() *flow {
	return &flow{mode: FlowMin, timeout: 5 * time.Second, rcv: make(map[uuid.UUID]*receiver),
		gone: make(map[uuid.UUID]time.Time), changed: make(chan struct{})}
}

// configure sets the mode and the silence after which a receiver leaves
// the calculation: those of the link opened last.
func (f *flow) configure(mode FlowControl, timeout time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.timeout = mode, timeout
	f.wake()
}

func (f *flow) wake() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// report takes a receiver's status entry for this node, and returns the
// lowest position of the live receivers (ok false: none is live), up to
// which the history may be freed.
func (f *flow) report(from uuid.UUID, e StatusEntry, now time.Time) (low uint64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.gone[from]; ok {
		return 0, false
	}
	r := f.rcv[from]
	if r == nil {
		if len(f.rcv) >= maxPeers {
			return 0, false
		}
		r = &receiver{node: from}
		f.rcv[from] = r
	}
	r.pos, r.win, r.last = e.Position, e.Window, now
	if !r.live && r.end() >= f.sent {
		r.live = true
		f.logs = append(f.logs, flowLog{node: from, joined: true})
	}
	f.wake()
	low = math.MaxUint64
	for _, r := range f.rcv {
		if r.live && now.Sub(r.last) <= f.timeout {
			low, ok = min(low, r.pos), true
		}
	}
	return low, ok
}

// limit returns the highest sequence number of stream 0 that may be
// written now, the receiver that sets it (nil: none), and when a silent
// one of the live receivers leaves the calculation next. It drops the
// receivers silent for longer than the timeout.
func (f *flow) limit(now time.Time) (lim uint64, by *receiver, expires time.Time) {
	lim = math.MaxUint64
	for id, r := range f.rcv {
		if now.Sub(r.last) > f.timeout {
			if r.live {
				f.excluded++
				f.logs = append(f.logs, flowLog{node: id, silent: now.Sub(r.last)})
			}
			delete(f.rcv, id)
			continue
		}
		if !r.live || f.mode == FlowNone {
			continue
		}
		if end := r.end(); end < lim {
			lim, by = end, r
		}
		if at := r.last.Add(f.timeout); expires.IsZero() || at.Before(expires) {
			expires = at
		}
	}
	return lim, by, expires
}

// leave drops node, which left the cluster (Heartbeat.Leaving): the
// writer no longer waits for it. It is not counted excluded.
func (f *flow) leave(node uuid.UUID, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.gone) < maxPeers {
		f.gone[node] = now
	}
	r := f.rcv[node]
	if r == nil {
		return
	}
	delete(f.rcv, node)
	if r.live {
		f.logs = append(f.logs, flowLog{node: node, leaving: true})
	}
	f.wake()
}

// forget drops every receiver, not counted excluded (Node.Moved).
func (f *flow) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.rcv)
	f.wake()
}

// back takes node, heard again (a heartbeat that does not say it
// leaves), as a receiver again from its next status.
func (f *flow) back(node uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.gone, node)
}

// age drops the receivers silent for longer than the timeout, and
// forgets the receivers gone for longer.
func (f *flow) age(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit(now)
	for node, at := range f.gone {
		if now.Sub(at) > f.timeout {
			delete(f.gone, node)
		}
	}
}

// wrote records that datagrams of stream 0 up to seq were written.
func (f *flow) wrote(seq uint64) {
	f.mu.Lock()
	f.sent = max(f.sent, seq)
	f.mu.Unlock()
}

// allowed returns how many of the leading datagrams of dgs may be
// written now: those of stream 1, and those of stream 0 within the
// limit. When it is none, it also returns what to wait on: changed, and
// a time to look again (a receiver's timeout).
func (f *flow) allowed(dgs [][]byte, now time.Time) (n int, changed chan struct{}, recheck time.Time, by *receiver) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim, by, expires := f.limit(now)
	for _, d := range dgs {
		if Kind(d[3]).Stream() == 0 && seqOf(d) > lim {
			break
		}
		n++
	}
	return n, f.changed, expires, by
}

// heldFor adds d to the time the writer was held back, by r.
func (f *flow) heldFor(r *receiver, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held += d
	if r != nil && f.rcv[r.node] == r {
		r.heldBack += d
	}
}

// takeLogs returns the lines to log, and forgets them.
func (f *flow) takeLogs() []flowLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	logs := f.logs
	f.logs = nil
	return logs
}

// FlowPeer is what flow control knows of one receiver.
type FlowPeer struct {
	Position uint64        // the highest sequence number of this node's stream 0 it reported processed
	Window   uint32        // how many datagrams past Position it said it can take
	Live     bool          // it counts in the calculation
	HeldBack time.Duration // how long the sender waited for it
}

// peer returns what flow control knows of node.
func (f *flow) peer(node uuid.UUID) FlowPeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rcv[node]
	if r == nil {
		return FlowPeer{}
	}
	return FlowPeer{Position: r.pos, Window: r.win, Live: r.live, HeldBack: r.heldBack}
}

// stats returns the time held back, the receivers excluded, and the
// live ones now.
func (f *flow) stats() (held time.Duration, excluded uint64, live int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rcv {
		if r.live {
			live++
		}
	}
	return f.held, f.excluded, live
}

func (g flowLog) String() string {
	if g.joined {
		return fmt.Sprintf("receiver %v joined flow control", g.node)
	}
	if g.leaving {
		return fmt.Sprintf("receiver %v left flow control: it left the cluster", g.node)
	}
	return fmt.Sprintf("receiver %v left flow control: no status for %v", g.node, g.silent.Round(time.Millisecond))
}
