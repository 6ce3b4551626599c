package multicast

import (
	"sort"
	"sync"
	"time"
)

// DefaultHistory is the default bound of a node's history of sent
// datagrams, in bytes.
const DefaultHistory = 4 << 20

// History keeps the last datagrams of stream 0 (data and heartbeats) that
// a node sent, as they were sent before any sealing, within a bound in
// bytes, to answer NAKs. A node's links share one History, as they share
// their sequence counters (Config.History), so that a link that replaces
// another on a reload answers for the datagrams the old one sent. It is
// safe for concurrent use.
//
// Besides the bound, it spends 32 bytes of bookkeeping on each datagram
// it holds: at most about half the bound again for the smallest ones.
type History struct {
	mu    sync.Mutex
	limit int
	buf   []byte // a ring of limit bytes, grown to it as datagrams come (growBuf)
	// ents are the datagrams held, oldest first, in increasing sequence
	// numbers: ents[(head+i)%len(ents)] for i < n.
	ents    []histEntry
	head, n int
	pos     int64  // virtual position of the next byte written: buf[pos%limit]
	newest  uint64 // the highest sequence number ever offered
	bytes   int    // bytes of the datagrams held
	dropped uint64 // datagrams not kept: larger than the bound, or out of order
	// released counts the datagrams dropped because every live receiver
	// had them (Release).
	released uint64
}

type histEntry struct {
	seq      uint64
	vpos     int64 // virtual position of its first byte
	n        int
	repaired int64 // when it was last resent, in Unix nanoseconds
}

// NewHistory returns a history bounded to limit bytes of datagrams; 0 (or
// less) keeps none, so that every NAK is answered "gone".
func NewHistory(limit int) *History {
	return &History{limit: max(0, limit)}
}

// Limit is the history's bound in bytes.
func (h *History) Limit() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.limit
}

// SetLimit changes the bound, keeping the newest datagrams that fit.
func (h *History) SetLimit(limit int) {
	limit = max(0, limit)
	h.mu.Lock()
	defer h.mu.Unlock()
	if limit == h.limit {
		return
	}
	type kept struct {
		seq uint64
		d   []byte
	}
	old := make([]kept, 0, h.n)
	for i := range h.n {
		e := h.entry(i)
		old = append(old, kept{e.seq, append([]byte(nil), h.bytesOf(e)...)})
	}
	newest := h.newest
	h.limit, h.buf, h.ents, h.head, h.n, h.pos, h.newest, h.bytes = limit, nil, nil, 0, 0, 0, 0, 0
	for _, o := range old {
		h.add(o.seq, o.d)
	}
	h.newest = max(h.newest, newest)
}

// Add keeps a copy of datagram d, numbered seq in stream 0, dropping the
// oldest datagrams to make room. The links of a node take turns
// (Config.Held), so datagrams come in increasing numbers; one numbered
// below the newest kept would not be kept, and a NAK for it would be
// answered "gone".
func (h *History) Add(seq uint64, d []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.add(seq, d)
}

func (h *History) add(seq uint64, d []byte) {
	if seq <= h.newest && h.n > 0 || len(d) > h.limit {
		h.newest = max(h.newest, seq)
		h.dropped++
		return
	}
	h.newest = max(h.newest, seq)
	size := int64(h.limit)
	start := h.pos
	if off := start % size; off+int64(len(d)) > size {
		start += size - off // no room before the end of the ring: wrap
	}
	end := start + int64(len(d))
	for h.n > 0 && h.ents[h.head].vpos < end-size {
		h.bytes -= h.ents[h.head].n
		h.head = (h.head + 1) % len(h.ents)
		h.n--
	}
	if h.n == len(h.ents) {
		h.grow()
	}
	off := start % size
	if need := off + int64(len(d)); need > int64(len(h.buf)) {
		h.growBuf(need)
	}
	copy(h.buf[off:], d)
	*h.entry(h.n) = histEntry{seq: seq, vpos: start, n: len(d)}
	h.n++
	h.bytes += len(d)
	h.pos = end
}

// growBuf makes the ring at least need bytes long, doubling it, up to
// the bound: a node that sends little (one that only listens sends its
// heartbeats) holds little. The ring first wraps once it is as long as
// the bound, so until then every datagram's offset is its virtual
// position, and the bytes keep their places in the longer ring.
func (h *History) growBuf(need int64) {
	n := min(int64(h.limit), max(need, 2*int64(len(h.buf)), 64<<10))
	buf := make([]byte, n)
	copy(buf, h.buf)
	h.buf = buf
}

func (h *History) grow() {
	ents := make([]histEntry, max(64, 2*len(h.ents)))
	for i := range h.n {
		ents[i] = *h.entry(i)
	}
	h.ents, h.head = ents, 0
}

// entry returns the i-th entry held, oldest first.
func (h *History) entry(i int) *histEntry {
	return &h.ents[(h.head+i)%len(h.ents)]
}

func (h *History) bytesOf(e *histEntry) []byte {
	off := e.vpos % int64(h.limit)
	return h.buf[off : off+int64(e.n)]
}

// at returns the index i (0..n) of the first entry whose seq is >= seq.
func (h *History) at(seq uint64) int {
	return sort.Search(h.n, func(i int) bool { return h.entry(i).seq >= seq })
}

// lookup answers a NAK for r. For each datagram of r it holds it calls
// found with its sequence number and bytes, unless it was resent less
// than holdoff ago; found returns false to stop (a rate limit), and the
// datagram is then not marked as resent. Every part of r below the
// oldest datagram held, or between two held ones, goes to gone. Parts
// above the newest datagram offered are not answered: they are not sent
// yet, or never were. The bytes given to found are valid only during
// the call.
func (h *History) lookup(r SeqRange, now time.Time, holdoff time.Duration, found func(seq uint64, d []byte) bool, gone func(SeqRange)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := min(r.Last, h.newest)
	if r.First > last {
		return
	}
	next := r.First // the first seq not answered yet
	for i := h.at(r.First); i < h.n; i++ {
		e := h.entry(i)
		if e.seq > last {
			break
		}
		if e.seq > next {
			gone(SeqRange{next, e.seq - 1})
		}
		next = e.seq + 1
		if now.UnixNano()-e.repaired < int64(holdoff) {
			continue
		}
		if !found(e.seq, h.bytesOf(e)) {
			return
		}
		e.repaired = now.UnixNano()
	}
	if next <= last {
		gone(SeqRange{next, last})
	}
}

// HistoryStats describes a history.
type HistoryStats struct {
	Bytes     int    // bytes of the datagrams held
	Datagrams int    // datagrams held
	Oldest    uint64 // the oldest sequence number held; 0 when none
	Newest    uint64 // the highest sequence number offered
	Released  uint64 // datagrams freed because every live receiver had them
}

// Stats returns what the history holds.
func (h *History) Stats() HistoryStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := HistoryStats{Bytes: h.bytes, Datagrams: h.n, Newest: h.newest, Released: h.released}
	if h.n > 0 {
		s.Oldest = h.ents[h.head].seq
	}
	return s
}

// Release drops the datagrams numbered upTo and below: every live
// receiver has reported them processed, so none will ask for them. It
// returns how many it dropped.
func (h *History) Release(upTo uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for h.n > 0 && h.ents[h.head].seq <= upTo {
		h.bytes -= h.ents[h.head].n
		h.head = (h.head + 1) % len(h.ents)
		h.n--
		n++
	}
	h.released += uint64(n)
	return n
}
