package channel

import (
	"log/slog"
	"time"
)

// Kill closes the connection at once, as a connection that breaks ends:
// what is queued for it is dropped.
func (c *Conn) Kill() { c.kill(slog.LevelInfo, "killed by a test") }

// CachedNames is how many event names the client's filter has decided
// and keeps; 0 when it has none.
func (c *Conn) CachedNames() int {
	if f := c.interest.Load(); f != nil {
		return f.cached()
	}
	return 0
}

// MaxCachedNames bounds a filter's cache.
const MaxCachedNames = maxCachedNames

// Progress is when the writer last recorded that the client took some
// of what it writes (monoNow nanoseconds), and the bytes it has written
// in whole chunks.
func (c *Conn) Progress() (tookAt int64, bytesOut uint64) {
	return c.tookAt.Load(), c.bytesOut.Load()
}

// SetHeldPingEvery changes how often a held client is pinged, for the
// channels opened until restore is called.
func SetHeldPingEvery(d time.Duration) (restore func()) {
	old := heldPingEvery
	heldPingEvery = d
	return func() { heldPingEvery = old }
}
