package multicast

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// histDatagram is a stand-in datagram of n bytes carrying its number.
func histDatagram(seq uint64, n int) []byte {
	d := bytes.Repeat([]byte{byte(seq)}, n)
	binary.BigEndian.PutUint64(d, seq)
	return d
}

// answer looks r up and returns what was found and what is gone.
func answer(h *History, r SeqRange, now time.Time) (found []uint64, gone []SeqRange) {
	h.lookup(r, now, repairHoldoff, func(seq uint64, d []byte) bool {
		if !bytes.Equal(d, histDatagram(seq, len(d))) {
			panic("the history changed a datagram")
		}
		found = append(found, seq)
		return true
	}, func(g SeqRange) { gone = append(gone, g) })
	return found, gone
}

func TestHistory(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHistory(1000)
	for seq := uint64(1); seq <= 30; seq++ {
		h.Add(seq, histDatagram(seq, 90+int(seq)%20))
		if s := h.Stats(); s.Bytes > 1000 {
			t.Fatalf("holds %d bytes, the bound is 1000", s.Bytes)
		}
	}
	s := h.Stats()
	if s.Newest != 30 || s.Oldest < 20 || s.Oldest > 23 || s.Datagrams != int(31-s.Oldest) {
		t.Fatalf("stats %+v", s)
	}
	found, gone := answer(h, SeqRange{1, 40}, now)
	if !slices.Equal(found, seqs(s.Oldest, 30)) || !slices.Equal(gone, []SeqRange{{1, s.Oldest - 1}}) {
		t.Errorf("answered %v, gone %v", found, gone)
	}
	// What was just resent is not resent again at once, but later.
	if found, _ := answer(h, SeqRange{25, 25}, now.Add(time.Millisecond)); len(found) != 0 {
		t.Errorf("resent %v again at once", found)
	}
	if found, _ := answer(h, SeqRange{25, 25}, now.Add(time.Second)); !slices.Equal(found, []uint64{25}) {
		t.Errorf("a second later: %v", found)
	}
	// A datagram out of order is not kept: asked for, it is gone.
	h.Add(31, histDatagram(31, 50))
	h.Add(33, histDatagram(33, 50))
	h.Add(32, histDatagram(32, 50))
	if found, gone := answer(h, SeqRange{31, 33}, now.Add(time.Hour)); !slices.Equal(found, []uint64{31, 33}) || !slices.Equal(gone, []SeqRange{{32, 32}}) {
		t.Errorf("out of order: found %v, gone %v", found, gone)
	}
	// Beyond the newest: not answered, not gone (not sent yet).
	if found, gone := answer(h, SeqRange{34, 100}, now); len(found)+len(gone) != 0 {
		t.Errorf("answered the future: %v, %v", found, gone)
	}
	// Shrinking keeps the newest.
	h.SetLimit(200)
	if s := h.Stats(); s.Bytes > 200 || s.Datagrams == 0 || s.Newest != 33 {
		t.Errorf("after shrinking: %+v", s)
	}
	if found, _ := answer(h, SeqRange{33, 33}, now.Add(2*time.Hour)); !slices.Equal(found, []uint64{33}) {
		t.Errorf("after shrinking, 33: %v", found)
	}
	// A history of 0 bytes keeps nothing, and says so.
	h = NewHistory(0)
	h.Add(1, histDatagram(1, 100))
	if found, gone := answer(h, SeqRange{1, 5}, now); len(found) != 0 || !slices.Equal(gone, []SeqRange{{1, 1}}) {
		t.Errorf("history 0: found %v, gone %v", found, gone)
	}
	// The rate limit stops the answer, and what it left out can be asked
	// again.
	h = NewHistory(1 << 20)
	for seq := uint64(1); seq <= 5; seq++ {
		h.Add(seq, histDatagram(seq, 100))
	}
	var n int
	h.lookup(SeqRange{1, 5}, now, repairHoldoff, func(uint64, []byte) bool { n++; return n < 3 }, func(SeqRange) {})
	if found, _ := answer(h, SeqRange{1, 5}, now); !slices.Equal(found, []uint64{3, 4, 5}) {
		t.Errorf("after a cut answer: %v", found)
	}
}

// FuzzHistory adds datagrams of arbitrary sizes to a small history and
// looks up arbitrary ranges: it never holds more than its bound, and
// what it returns is what was added.
func FuzzHistory(f *testing.F) {
	f.Add([]byte{10, 200, 30, 5, 255, 1, 2, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		h := NewHistory(2000)
		now := time.Unix(1000, 0)
		seq := uint64(0)
		for i, op := range ops {
			if op%5 == 0 {
				r := SeqRange{1 + uint64(op)%seq1(seq), seq + uint64(i%3)}
				if r.First > r.Last {
					r.First, r.Last = r.Last, r.First
				}
				now = now.Add(time.Duration(op) * time.Millisecond)
				answer(h, r, now)
				continue
			}
			seq++
			h.Add(seq, histDatagram(seq, 8+int(op)*9))
			if s := h.Stats(); s.Bytes > 2000 {
				t.Fatalf("holds %d bytes", s.Bytes)
			}
		}
	})
}

func seq1(n uint64) uint64 { return max(1, n) }

// TestHistoryGrows: the ring grows with what is sent, up to its bound,
// so a node that sends little holds little; datagrams keep their bytes
// through every growth and wrap.
func TestHistoryGrows(t *testing.T) {
	h := NewHistory(64 << 20)
	h.Add(1, histDatagram(1, 200))
	if n := len(h.buf); n > 64<<10 {
		t.Errorf("one datagram of 200 bytes took a ring of %d bytes", n)
	}
	const limit = 300 << 10
	h = NewHistory(limit)
	now := time.Unix(1000, 0)
	for seq := uint64(1); seq <= 600; seq++ {
		h.Add(seq, histDatagram(seq, 1000+int(seq*37)%400))
		s := h.Stats()
		if s.Bytes > limit || len(h.buf) > limit {
			t.Fatalf("after %d: holds %d bytes in a ring of %d; the bound is %d", seq, s.Bytes, len(h.buf), limit)
		}
		// answer panics if a datagram's bytes changed.
		found, _ := answer(h, SeqRange{s.Oldest, seq}, now.Add(time.Duration(seq)*time.Second))
		if len(found) != s.Datagrams {
			t.Fatalf("after %d: found %d of the %d held", seq, len(found), s.Datagrams)
		}
	}
	if len(h.buf) != limit {
		t.Errorf("the ring is %d bytes after 600 datagrams, want the bound, %d", len(h.buf), limit)
	}
}
