package channel

import "time"

// limits are the bounds of the channel's clients, swapped as a whole
// (SetLimits, SetFlow): each push reads them once.
type limits struct {
	maxFrame, maxPending int
	high, low            int           // the queue's marks: marks(maxPending)
	block                bool          // overflow block: a queue past high holds its publishers
	stall                time.Duration // stalltimeout
}

func newLimits(maxFrame, maxPending int, overflow Overflow, stall time.Duration) *limits {
	high, low := marks(maxPending)
	return &limits{maxFrame: maxFrame, maxPending: maxPending, high: high, low: low,
		block: overflow == OverflowBlock, stall: stall}
}

func (l *limits) overflow() Overflow {
	if l.block {
		return OverflowBlock
	}
	return OverflowDrop
}

// SetLimits changes maxframe and maxpending for the frames that follow.
func (ch *Channel) SetLimits(maxFrame, maxPending int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	l := ch.limits.Load()
	ch.limits.Store(newLimits(maxFrame, maxPending, l.overflow(), l.stall))
}

// SetFlow changes the overflow policy and the stall timeout (0 means
// DefaultStallTimeout) for the frames that follow. Publishers held when
// the policy becomes OverflowDrop are let go within a few milliseconds.
func (ch *Channel) SetFlow(overflow Overflow, stallTimeout time.Duration) {
	if stallTimeout == 0 {
		stallTimeout = DefaultStallTimeout
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	l := ch.limits.Load()
	ch.limits.Store(newLimits(l.maxFrame, l.maxPending, overflow, stallTimeout))
}

func (ch *Channel) maxFrame() int   { return ch.limits.Load().maxFrame }
func (ch *Channel) maxPending() int { return ch.limits.Load().maxPending }
