package multicast

import (
	"time"

	"github.com/google/uuid"
)

// Replay protection. A sealed datagram that authenticates is accepted
// once: each sender's two sequence streams have a sliding window of the
// last replayWindow numbers, and a number already accepted, or older than
// the window, is a replay. The windows of maxReplayNodes senders are kept,
// whether or not they are still heard: when a new sender needs room, the
// one silent the longest is forgotten, and a replay of its datagrams would
// then be taken for new. So is a replay of an old datagram of a sender
// that this node has never heard since it started: the first datagram of
// a sender only starts its window.

const (
	// replayWindow is how many sequence numbers each stream's window
	// spans.
	replayWindow = 4096
	// maxReplayNodes bounds the senders whose windows are kept: with two
	// windows of 520 bytes each, about 1 MiB.
	maxReplayNodes = 1024
)

// replayWin is a sliding anti-replay window over one sequence stream.
type replayWin struct {
	top  uint64 // the highest number accepted; 0 before the first
	bits [replayWindow / 64]uint64
}

// accept reports whether seq is new to the window, and marks it.
func (w *replayWin) accept(seq uint64) bool {
	switch {
	case seq == 0: // never sent
		return false
	case seq > w.top:
		if seq-w.top >= replayWindow || w.top == 0 {
			w.bits = [replayWindow / 64]uint64{}
		} else {
			// Counted, not compared with seq: seq may be MaxUint64,
			// which no s exceeds.
			for s, n := w.top+1, seq-w.top; n > 0; s, n = s+1, n-1 {
				w.bits[s/64%uint64(len(w.bits))] &^= 1 << (s % 64)
			}
		}
		w.top = seq
	case w.top-seq >= replayWindow:
		return false
	}
	i, bit := seq/64%uint64(len(w.bits)), uint64(1)<<(seq%64)
	if w.bits[i]&bit != 0 {
		return false
	}
	w.bits[i] |= bit
	return true
}

// senderWindows are one sender's windows, one per stream.
type senderWindows struct {
	streams [2]replayWin
	last    time.Time // when a datagram of the sender was last accepted
}

// replayGuard holds the windows of the senders heard. It belongs to the
// link's read goroutine.
type replayGuard struct {
	senders map[uuid.UUID]*senderWindows
}

func newReplayGuard() *replayGuard {
	return &replayGuard{senders: make(map[uuid.UUID]*senderWindows)}
}

// accept reports whether (node, stream, seq) is new, and marks it. Call
// it only for datagrams that authenticated.
func (g *replayGuard) accept(node uuid.UUID, stream uint32, seq uint64, now time.Time) bool {
	s := g.senders[node]
	if s == nil {
		if len(g.senders) >= maxReplayNodes {
			g.forgetQuietest()
		}
		s = &senderWindows{}
		g.senders[node] = s
	}
	if !s.streams[stream].accept(seq) {
		return false
	}
	s.last = now
	return true
}

// forgetQuietest drops the windows of the sender silent the longest.
func (g *replayGuard) forgetQuietest() {
	var quiet uuid.UUID
	var since time.Time
	first := true
	for node, s := range g.senders {
		if first || s.last.Before(since) {
			quiet, since, first = node, s.last, false
		}
	}
	delete(g.senders, quiet)
}
