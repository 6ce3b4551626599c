package channel

import (
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Inbound frames are read into buffers from size-classed pools, so that
// the server's steady state allocates nothing per event. A buffer is
// reference-counted: the reading connection holds one reference while
// the Handler runs, and every receiver queue that takes the frame holds
// one more until its writer has written it, or until the queue is
// discarded because its connection ended. The last release puts the
// buffer back in its pool.
//
// The pools are sync.Pools, which the garbage collector empties of what
// has not been used since the last cycle but one: that is their bound.
// Frames of more than maxPooled bytes are allocated and left to the
// garbage collector, as are the frames a caller gives to Send.

// Size classes: from 64 bytes to 64 KiB, each power of two and three
// steps between it and the next (1024, 1280, 1536, 1792, 2048...), so
// that a buffer wastes less than a fifth of itself.
const (
	minClassShift = 6 // the smallest class is 1<<minClassShift bytes
	maxPooled     = 64 << 10
	numClasses    = 4*(16-minClassShift) + 1 // up to 1<<16, the largest
)

var framePools [numClasses]sync.Pool

// frameBuf is a pooled buffer holding one inbound frame.
type frameBuf struct {
	b     []byte // the whole buffer, len(b) == cap(b) >= its class's size
	refs  atomic.Int32
	class int8
}

// frameBufSize is what a frameBuf costs beside its buffer; the queues
// count it with each entry.
const frameBufSize = int(unsafe.Sizeof(frameBuf{}))

// sizeClass returns the pool index and buffer size for a frame of size
// bytes, or -1 when the frame is too large to pool.
func sizeClass(size int) (int, int) {
	switch {
	case size > maxPooled:
		return -1, 0
	case size <= 1<<minClassShift:
		return 0, 1 << minClassShift
	}
	k := bits.Len(uint(size - 1)) // 1<<(k-1) < size <= 1<<k
	base := 1 << (k - 1)
	step := base / 4
	q := (size - base + step - 1) / step // 1 to 4
	return 4*(k-1-minClassShift) + q, base + q*step
}

// getFrameBuf returns a buffer for a frame of size bytes, held by the
// read loop that asks (readerRefs), or nil when the frame is too large
// to pool.
func getFrameBuf(size int) *frameBuf {
	class, n := sizeClass(size)
	if class < 0 {
		return nil
	}
	fb, _ := framePools[class].Get().(*frameBuf)
	if fb == nil {
		// Grown rather than made, so that the capacity is what the
		// allocator really gave, which the queues count.
		b := slices.Grow([]byte(nil), n)
		fb = &frameBuf{b: b[:cap(b)], class: int8(class)}
	}
	if poisonReleased {
		live.Add(1)
	}
	fb.refs.Store(readerRefs)
	return fb
}

// readerRefs is the count a buffer starts with: its read loop's
// reference and a bias that keeps the count above zero whatever the
// writers release, while the Handler queues the frame. The queues'
// references are then added all at once (settle), so that fanning a
// frame out to n clients costs one atomic operation on the reading side,
// not n.
const readerRefs = 1 << 30

// live counts the pooled buffers handed out and not yet released, in
// ncpoison builds only; tests check that it returns to 0.
var live atomic.Int64

// settle ends the read loop's hold on the buffer: taken queues hold
// references to it from now on, and the reader's own is dropped.
func (fb *frameBuf) settle(taken int) { fb.drop(readerRefs - int32(taken)) }

// release drops one of the queues' references.
func (fb *frameBuf) release() { fb.drop(1) }

// drop drops n references; the last one returns the buffer to its pool.
// In builds with the ncpoison tag, the buffer is overwritten instead and
// never reused, so that anything still reading it sees garbage.
func (fb *frameBuf) drop(n int32) {
	switch n := fb.refs.Add(-n); {
	case n > 0:
		return
	case n < 0:
		panic("channel: frame buffer released more often than retained")
	}
	if poisonReleased {
		live.Add(-1)
		for i := range fb.b {
			fb.b[i] = poisonByte
		}
		return
	}
	framePools[fb.class].Put(fb)
}

// poisonByte fills released buffers in ncpoison builds. As the first
// byte of a length prefix it declares a frame far over any maxframe, and
// as a msgpack value it is a reserved code.
const poisonByte = 0xc1

// sendQueue is a connection's queue of frames for its writer: the frames
// in order, which the writer hands to writev as they are, and beside
// each the pooled buffer it lives in, if any, of which the queue holds a
// reference.
//
// Consecutive frames that lie one after the other in one buffer that
// the GC owns (a NATS pack's body: Event.SetFrame) share an entry, so that a
// pack's events cost the writer one slice, not one each; merged counts
// the frames that joined an entry after its first.
//
// A frame keeps the whole of such a slab alive, but counts only its own
// bytes; run follows the queue's frames of the last slab (slabRun).
type sendQueue struct {
	frames [][]byte
	refs   []*frameBuf // refs[i] is the buffer of frames[i]; nil when the GC owns it
	cost   int         // what the entries cost towards pending (entryCost)
	merged int
	run    slabRun
}

// slabRun follows the frames of one slab (Event.SetFrame) that a list
// of entries takes: a client's queue, or a channel's ring. Each keeps
// the whole slab alive and counts only its own bytes, so when a frame of
// another slab comes and the list took less than half of the last one's
// bytes (a client that listens to few of a pack's events; a ring that
// got only some of them, the rest having come by multicast first), the
// entries of the last slab still in the list are copied out of it, into
// pooled buffers: what the list holds then stays within what it counts.
//
// The note of the slab keeps that one alive until another slab's frame
// comes: one slab a list at most, and one the channel's ring holds for
// retainage anyway.
type slabRun struct {
	slab  *byte // nil: no run
	cap   int
	bytes int  // of the slab's frames the list took, those it has let go of included
	span  int  // the last span entries of the list came since the run began
	last  bool // the list's last entry lies in the slab
}

// next notes that the list takes a frame of n bytes that lies in slab,
// of slabCap bytes (nil: none), as an entry of its own (joined: as part
// of its last one), and reports whether its last span entries, before
// this one, are to be copied out of the run's slab, which the frame
// ends (contains tells which of them lie in it).
func (r *slabRun) next(slab *byte, slabCap, n int, joined bool) (ended slabRun, sparse bool) {
	if slab != nil && slab != r.slab {
		ended, sparse = *r, r.slab != nil && 2*r.bytes < r.cap
		*r = slabRun{slab: slab, cap: slabCap}
	}
	if slab != nil {
		r.bytes += n
	}
	if !joined && r.slab != nil {
		r.span++
	}
	r.last = slab != nil
	return ended, sparse
}

// joins reports whether a frame that starts at b, in slab, continues the
// list's last entry, last.
func (r *slabRun) joins(slab *byte, last, b []byte) bool {
	return slab != nil && slab == r.slab && r.last && len(b) > 0 && len(last) > 0 &&
		unsafe.Add(unsafe.Pointer(unsafe.SliceData(last)), len(last)) == unsafe.Pointer(unsafe.SliceData(b))
}

// contains reports whether b lies in the run's slab.
func (r *slabRun) contains(b []byte) bool {
	p, start := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(r.slab))
	return len(b) > 0 && p >= start && p < start+uintptr(r.cap)
}

// entryOverhead is what a queue entry costs beside its bytes: its frame
// and reference slots, twice because the queue grows by doubling.
const entryOverhead = 2 * int(unsafe.Sizeof([]byte(nil))+unsafe.Sizeof((*frameBuf)(nil)))

// entryCost is what a queued frame counts towards its connection's
// pending bytes: everything the entry keeps alive, so that what a client
// that never reads holds stays within maxpending. A shared buffer is
// counted in full by every queue that holds it.
func entryCost(b []byte, ref *frameBuf) int {
	if ref != nil {
		return cap(ref.b) + frameBufSize + entryOverhead
	}
	return cap(b) + entryOverhead
}

// add appends a frame whose reference, if any, the caller has taken for
// the queue, and which costs cost. It returns what the queue's cost grew
// by beside cost, which the caller adds to its pending bytes too: what
// copies of an earlier slab's frames cost more than the frames did
// (slabRun).
func (q *sendQueue) add(b []byte, ref *frameBuf, cost int) int { return q.addIn(b, nil, 0, ref, cost) }

// addIn is add for a frame that lies in slab, a buffer of slabCap bytes
// that the GC owns (nil: none): when the last entry lies in slab too and
// ends where b starts, b joins it.
func (q *sendQueue) addIn(b []byte, slab *byte, slabCap int, ref *frameBuf, cost int) (extra int) {
	q.cost += cost
	if ref != nil {
		slab = nil // a pooled buffer: never shared
	}
	n := len(q.frames)
	joined := n > 0 && q.run.joins(slab, q.frames[n-1], b)
	if ended, sparse := q.run.next(slab, slabCap, len(b), joined); sparse {
		for i := max(0, n-ended.span); i < n; i++ {
			if q.refs[i] == nil && ended.contains(q.frames[i]) {
				old := q.frames[i]
				q.frames[i], q.refs[i] = queuedCopy(old)
				extra += entryCost(q.frames[i], q.refs[i]) - (len(old) + entryOverhead)
			}
		}
		q.cost += extra
	}
	if joined {
		// Both lie in slab, one after the other: one slice of it.
		q.frames[n-1] = unsafe.Slice(unsafe.SliceData(q.frames[n-1]), len(q.frames[n-1])+len(b))
		q.merged++
		return extra
	}
	q.frames = append(q.frames, b)
	q.refs = append(q.refs, ref)
	return extra
}

// follow makes an empty queue go on from batch, which the writer has
// just taken from the connection: frames of batch's last slab that come
// next count with those of the batch towards the slab's share, though
// they never join its entries.
func (q *sendQueue) follow(batch *sendQueue) {
	q.run = slabRun{slab: batch.run.slab, cap: batch.run.cap, bytes: batch.run.bytes}
}

// queuedCopy copies b into a pooled buffer of which the caller holds the
// one reference, or, when b is too large to pool, into one the GC owns.
func queuedCopy(b []byte) ([]byte, *frameBuf) {
	fb := getFrameBuf(len(b))
	if fb == nil {
		return slices.Clone(b), nil
	}
	fb.refs.Store(1)
	return fb.b[:copy(fb.b, b)], fb
}

// events is how many frames the queue holds.
func (q *sendQueue) events() int { return len(q.frames) + q.merged }

// release drops the queue's references and empties it, keeping its
// arrays.
func (q *sendQueue) release() {
	for _, ref := range q.refs {
		if ref != nil {
			ref.release()
		}
	}
	clear(q.frames)
	clear(q.refs)
	*q = sendQueue{frames: q.frames[:0], refs: q.refs[:0]}
}

// LiveBuffers reports how many pooled frame buffers are held by read
// loops and queues, in builds with the ncpoison tag; in other builds,
// which do not count them, it is always 0. Once every channel has shut
// down it must be 0: tests check it to find references never released.
func LiveBuffers() int64 { return live.Load() }
