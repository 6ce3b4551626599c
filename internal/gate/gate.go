// Package gate holds the sending of a link that a reload opened in place
// of another, until the other has sent all it took: both multicast and
// natslink use it, so that no event overtakes an earlier one across the
// swap.
package gate

import (
	"sync"
	"sync/atomic"
)

// Gate is open in its zero value. A shut gate costs Wait one atomic load
// once it is open.
type Gate struct {
	shut   atomic.Bool
	opened chan struct{}
	once   sync.Once
}

// Shut shuts g; call it before g is shared with other goroutines.
func (g *Gate) Shut() {
	g.opened = make(chan struct{})
	g.shut.Store(true)
}

// Open opens g for good. It is idempotent, and does nothing to an open
// gate.
func (g *Gate) Open() {
	if g.opened == nil {
		return
	}
	g.once.Do(func() {
		g.shut.Store(false)
		close(g.opened)
	})
}

// Opened reports whether g is open.
func (g *Gate) Opened() bool { return !g.shut.Load() }

// Wait returns true once g is open, or false if stop is closed first.
func (g *Gate) Wait(stop <-chan struct{}) bool {
	if !g.shut.Load() {
		return true
	}
	select {
	case <-g.opened:
		return true
	case <-stop:
		return false
	}
}
