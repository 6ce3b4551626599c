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
// bytes. So that what a client holds stays within maxpending all the
// same, a queue that takes less than half of a slab's bytes (a client
// that listens to few of the pack's events) gets copies of them instead,
// in pooled buffers, once the next slab starts (endRun). The queue's
// own note of the last slab keeps that one alive until another frame
// comes: one slab a connection at most, and one the channel's ring
// holds for retainage anyway.
type sendQueue struct {
	frames [][]byte
	refs   []*frameBuf // refs[i] is the buffer of frames[i]; nil when the GC owns it
	cost   int         // what the entries cost towards pending (entryCost)
	merged int
	// slab is the slab of the last frame queued, when it is one (nil
	// otherwise), and slabCap its size; slabBytes are the bytes of its
	// frames queued, those of the batches the writer has taken included
	// (follow); the last runLen entries hold those still in the queue.
	slab      *byte
	slabCap   int
	slabBytes int
	runLen    int
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
// copies of an earlier slab's frames cost more than the frames (endRun).
func (q *sendQueue) add(b []byte, ref *frameBuf, cost int) int { return q.addIn(b, nil, 0, ref, cost) }

// addIn is add for a frame that lies in slab, a buffer of slabCap bytes
// that the GC owns (nil: none): when the last entry lies in slab too and
// ends where b starts, b joins it.
func (q *sendQueue) addIn(b []byte, slab *byte, slabCap int, ref *frameBuf, cost int) (extra int) {
	q.cost += cost
	if ref != nil {
		slab = nil // a pooled buffer: never shared
	}
	if slab != q.slab {
		extra = q.endRun()
		q.cost += extra
	}
	if slab == nil {
		q.frames = append(q.frames, b)
		q.refs = append(q.refs, ref)
		return extra
	}
	q.slab, q.slabCap = slab, slabCap
	q.slabBytes += len(b)
	if n := len(q.frames); n > 0 && q.runLen > 0 && len(b) > 0 {
		last := q.frames[n-1]
		if start := unsafe.SliceData(last); unsafe.Add(unsafe.Pointer(start), len(last)) == unsafe.Pointer(unsafe.SliceData(b)) {
			// Both lie in slab, one after the other: one slice of it.
			q.frames[n-1] = unsafe.Slice(start, len(last)+len(b))
			q.merged++
			return extra
		}
	}
	q.frames = append(q.frames, b)
	q.refs = append(q.refs, nil)
	q.runLen++
	return extra
}

// endRun ends the queue's run of frames of q.slab, as the next frame
// lies elsewhere: when the queue took less than half of the slab's
// bytes, the entries of the run still queued become copies in pooled
// buffers, so that they keep no more than their bytes alive. It returns
// what the copies cost more than the entries' bytes did (entryCost):
// what a pooled buffer adds, or, for an entry that frames joined, that
// less the slots of the frames that joined it.
func (q *sendQueue) endRun() (extra int) {
	if q.slab != nil && 2*q.slabBytes < q.slabCap {
		for i := len(q.frames) - q.runLen; i < len(q.frames); i++ {
			old := q.frames[i]
			q.frames[i], q.refs[i] = queuedCopy(old)
			extra += entryCost(q.frames[i], q.refs[i]) - (len(old) + entryOverhead)
		}
	}
	q.slab, q.slabCap, q.slabBytes, q.runLen = nil, 0, 0, 0
	return extra
}

// follow makes an empty queue go on from batch, which the writer has
// just taken from the connection: frames of batch's last slab that come
// next count with those of the batch towards the slab's share (endRun),
// though they never join its entries.
func (q *sendQueue) follow(batch *sendQueue) {
	q.slab, q.slabCap, q.slabBytes, q.runLen = batch.slab, batch.slabCap, batch.slabBytes, 0
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
