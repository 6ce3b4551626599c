package channel

import (
	"sync"
	"sync/atomic"
)

// maxCachedNames bounds a nameCache: a channel whose events have more
// distinct names than that starts the cache afresh once it is full, so
// that it follows what is sent now.
const maxCachedNames = 4096

// nameCache keeps a value per event name: a filter's decisions, and the
// channel's audiences (audience.go). The map that lookups read (cur) is
// copy-on-write behind an atomic pointer, read without a lock. Names not
// in it are decided under mu and put in fresh, which is merged into a
// new cur once the lookups that went past cur since the last merge
// reach an eighth of cur's size: the cost of copying is then spread over
// that many slow lookups, and a name is in cur after a bounded number of
// events.
type nameCache[V any] struct {
	cur   atomic.Pointer[map[string]V]
	mu    sync.Mutex
	fresh map[string]V
	slow  int // lookups past cur since it was last replaced
}

// get looks name up in the lock-free map; it allocates nothing.
func (c *nameCache[V]) get(name []byte) (v V, ok bool) {
	if m := c.cur.Load(); m != nil {
		v, ok = (*m)[string(name)]
	}
	return v, ok
}

// add is get's slow path: it returns the value fresh holds for name,
// or decides one and keeps it, unless decide says not to.
func (c *nameCache[V]) add(name []byte, decide func() (V, bool)) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, hit := c.fresh[string(name)]
	if !hit {
		var keep bool
		if v, keep = decide(); !keep {
			return v
		}
		if c.fresh == nil {
			c.fresh = map[string]V{}
		}
		c.fresh[string(name)] = v
	}
	c.slow++
	n := 0
	cur := c.cur.Load()
	if cur != nil {
		n = len(*cur)
	}
	if c.slow <= n/8 {
		return v
	}
	next := c.fresh
	if n+len(c.fresh) <= maxCachedNames && n > 0 {
		next = make(map[string]V, n+len(c.fresh))
		for k, x := range *cur {
			next[k] = x
		}
		for k, x := range c.fresh {
			next[k] = x
		}
	}
	c.cur.Store(&next)
	c.fresh, c.slow = nil, 0
	return v
}

// len is how many names the cache holds.
func (c *nameCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.fresh)
	if m := c.cur.Load(); m != nil {
		n += len(*m)
	}
	return n
}
