package multicast

import (
	"time"

	"github.com/google/uuid"
)

// Flow control, the receiver's side: each node multicasts statuses that
// report its position in the stream 0 of every peer whose stream it
// keeps (the last sequence number processed in order, skipped gaps
// included) and its window. It reports a peer's progress at once when
// it has passed a quarter of the window since the last report, again
// statusDelay later (and after smaller progress), and everything at
// every heartbeat: so a sender that keeps a window in flight hears of
// progress before it has to wait, and a lost status holds it back for
// statusDelay, not a heartbeat; an idle one hears a status per heartbeat
// per receiver, which also tells it the receiver is alive.

// statusDelay is how long progress of less than a quarter window waits
// before it is reported, and how long after a status sent at once it
// is sent again. A trickle of events costs at most one status per
// receiver every statusDelay.
const statusDelay = 20 * time.Millisecond

// minWindow is the smallest window a node announces.
const minWindow = 16

// truesize is what the system charges a receive buffer per datagram
// beyond its payload, as a conservative estimate: the socket buffer's
// bookkeeping, doubled by Linux, is mostly spent on it.
const truesize = 1024

// statusState is the receiver's reporting state.
type statusState struct {
	kick chan struct{} // capacity 1: progress to report, arm the status timer
}

// receiveWindow is how many datagrams of payload bytes a node says it
// can take past its position in a peer's stream: what its socket buffer
// of rcvbuf bytes holds while it is busy, and no more than the hold
// bound per peer holds when they arrive ahead of a gap.
func receiveWindow(rcvbuf, payload, holdPeer int) uint32 {
	w := rcvbuf / (payload + truesize)
	if holdPeer > 0 {
		w = min(w, holdPeer/(payload+heldOverhead))
	}
	return uint32(max(w, minWindow))
}

// progressed looks at node's window after a datagram of its stream 0
// was placed: it reports whether a status is due now (a quarter window
// passed since the last report) and whether to ask for one soon, after
// statusDelay: after smaller progress, and after a status sent at once
// too, which is so repeated once in case it was lost while its sender
// waits for it. l.mu is held.
func (l *Link) progressed(w *window) (now, soon bool) {
	if w == nil || w.next-1 <= w.reported {
		return false, false
	}
	now = w.next-1-w.reported >= uint64(max(1, l.window/4))
	if !l.statusPending {
		l.statusPending, soon = true, true
	}
	return now, soon
}

// sendStatus multicasts this node's position in every peer's stream 0,
// in as many statuses as it takes; with no peer, one empty status.
func (l *Link) sendStatus() {
	l.mu.Lock()
	l.statusPending = false
	entries := make([]StatusEntry, 0, len(l.ord.wins))
	for _, w := range l.ord.wins {
		entries = append(entries, StatusEntry{Node: w.node, Position: w.next - 1, Window: l.window})
		w.reported = w.next - 1
	}
	l.mu.Unlock()
	per := max(1, min(MaxRecords, (l.payload-HeaderLen)/statusEntryLen))
	for first := true; first || len(entries) > 0; first = false {
		n := min(per, len(entries))
		l.sendCtl(KindStatus, n, AppendStatus(make([]byte, 0, n*statusEntryLen), entries[:n]))
		l.counts.statusSent.Add(1)
		entries = entries[n:]
	}
}

// takeStatus handles a status from node: the entry that names this node
// goes to flow control, and the history is freed up to what every live
// receiver has processed.
func (l *Link) takeStatus(from uuid.UUID, entries []StatusEntry, now time.Time) {
	l.counts.statusIn.Add(1)
	if l.flow == nil {
		return
	}
	for _, e := range entries {
		if e.Node != l.cfg.Node {
			continue
		}
		if low, ok := l.flow.report(from, e, now); ok {
			l.hist.Release(low)
		}
	}
}

// logFlow logs the receivers that joined or left flow control.
func (l *Link) logFlow() {
	if l.flow == nil {
		return
	}
	for _, g := range l.flow.takeLogs() {
		switch {
		case g.joined:
			l.log.Info("receiver joined flow control", "peer", g.node)
		case g.leaving:
			l.log.Info("receiver left flow control: it left the cluster", "peer", g.node)
		default:
			l.log.Warn("receiver left flow control: no status for peertimeout; the sender no longer waits for it", "peer", g.node, "silent", g.silent.Round(time.Millisecond))
		}
	}
}
