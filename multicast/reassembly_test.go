package multicast

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
)

// split cuts msg into count fragments of at most per bytes.
func split(id uuid.UUID, msg []byte, per int) []Record {
	count := (len(msg) + per - 1) / per
	var out []Record
	for i := range count {
		out = append(out, Record{ID: id, Index: i, Count: count, Total: len(msg), Payload: msg[i*per : min(len(msg), (i+1)*per)]})
	}
	return out
}

func TestReassembly(t *testing.T) {
	t0 := time.Unix(1000, 0)
	node := uuid.New()
	msg := bytes.Repeat([]byte("0123456789"), 100)
	tests := []struct {
		name  string
		order []int // fragment indexes, in arrival order
		want  []outcome
	}{
		{"in order", []int{0, 1, 2, 3}, []outcome{fragPending, fragPending, fragPending, fragComplete}},
		{"reversed", []int{3, 2, 1, 0}, []outcome{fragPending, fragPending, fragPending, fragComplete}},
		{"duplicate fragment", []int{1, 1, 0, 2, 3}, []outcome{fragPending, fragDuplicate, fragPending, fragPending, fragComplete}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ra := newReassembler(1<<20, time.Second)
			frags := split(uuid.New(), msg, 300)
			for i, idx := range tc.order {
				got, res := ra.add(node, &frags[idx], t0)
				if res != tc.want[i] {
					t.Fatalf("step %d (fragment %d): outcome %d, want %d", i, idx, res, tc.want[i])
				}
				if res == fragComplete && !bytes.Equal(got, msg) {
					t.Fatalf("reassembled %d bytes, not the message", len(got))
				}
			}
			if ra.bytes != 0 || ra.pending() != 0 {
				t.Errorf("still holds %d bytes in %d messages", ra.bytes, ra.pending())
			}
		})
	}
}

func TestReassemblyRefusesContradictions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	node := uuid.New()
	id := uuid.New()
	ra := newReassembler(1<<20, time.Second)
	first := Record{ID: id, Index: 0, Count: 3, Total: 30, Payload: make([]byte, 10)}
	if _, res := ra.add(node, &first, t0); res != fragPending {
		t.Fatal(res)
	}
	otherCount := Record{ID: id, Index: 1, Count: 4, Total: 30, Payload: make([]byte, 10)}
	if _, res := ra.add(node, &otherCount, t0); res != fragBad {
		t.Errorf("another fragment count: %d, want fragBad", res)
	}
	tooLong := Record{ID: id, Index: 1, Count: 3, Total: 30, Payload: make([]byte, 25)}
	if _, res := ra.add(node, &tooLong, t0); res != fragBad {
		t.Errorf("fragments longer than the message: %d, want fragBad", res)
	}
	if ra.pending() != 0 || ra.bytes != 0 {
		t.Errorf("the message was not dropped: %d bytes held", ra.bytes)
	}
	// Same id from another node is another message.
	a, b := first, first
	ra.add(node, &a, t0)
	if _, res := ra.add(uuid.New(), &b, t0); res != fragPending || ra.pending() != 2 {
		t.Errorf("the same id from two nodes: %d, %d pending", res, ra.pending())
	}
	// Short of the total when complete.
	short := newReassembler(1<<20, time.Second)
	for i := range 2 {
		r := Record{ID: id, Index: i, Count: 2, Total: 30, Payload: make([]byte, 10)}
		if _, res := short.add(node, &r, t0); i == 1 && res != fragBad {
			t.Errorf("complete but 10 bytes short: %d, want fragBad", res)
		}
	}
}

func TestReassemblyBoundAndExpiry(t *testing.T) {
	t0 := time.Unix(1000, 0)
	node := uuid.New()
	const budget = 64 << 10
	ra := newReassembler(budget, time.Second)
	// A flood of first fragments of messages that never complete.
	for i := range 1000 {
		r := Record{ID: uuid.New(), Index: 0, Count: 50, Total: 50 * 1000, Payload: make([]byte, 1000)}
		if _, res := ra.add(node, &r, t0.Add(time.Duration(i)*time.Millisecond)); res == fragNoRoom {
			t.Fatalf("fragment %d found no room: the oldest should be evicted", i)
		}
		if ra.bytes > budget {
			t.Fatalf("holds %d bytes, over the budget %d", ra.bytes, budget)
		}
	}
	if ra.evicted == 0 || ra.peak > budget {
		t.Errorf("evicted %d, peak %d", ra.evicted, ra.peak)
	}
	// A message that alone would pass the budget is refused.
	huge := Record{ID: uuid.New(), Index: 0, Count: 2, Total: budget, Payload: make([]byte, 1000)}
	if _, res := ra.add(node, &huge, t0); res != fragNoRoom {
		t.Errorf("a message over the budget: %d, want fragNoRoom", res)
	}
	// A good message still completes among the flood.
	msg := bytes.Repeat([]byte("x"), 5000)
	var got []byte
	for _, f := range split(uuid.New(), msg, 1000) {
		got, _ = ra.add(node, &f, t0.Add(2*time.Second))
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("the good message did not complete")
	}
	ra.expire(t0.Add(10 * time.Second))
	if ra.bytes != 0 || ra.pending() != 0 || ra.expired == 0 {
		t.Errorf("after expiry: %d bytes, %d pending, %d expired", ra.bytes, ra.pending(), ra.expired)
	}
}

// TestRecentIDs fills a Recent of 3 ids twice over: it remembers the
// 3 to 6 last ids, and forgets the older ones a generation at a time.
func TestRecentIDs(t *testing.T) {
	r := NewRecent(3)
	ids := make([]uuid.UUID, 7)
	for i := range ids {
		ids[i] = uuid.New()
		if !r.Add(ids[i]) || r.Add(ids[i]) {
			t.Errorf("id %d: Add said new, then not new: want true, false", i)
		}
	}
	// Ids 0 to 2 made the first generation, 3 to 5 the second; id 6
	// emptied the first and took its place.
	for i, id := range ids {
		if got, want := r.Has(id), i >= 3; got != want {
			t.Errorf("id %d: has = %v, want %v", i, got, want)
		}
	}
	if n := r.len(); n != 4 {
		t.Errorf("remembers %d ids, want 4", n)
	}
}

// TestReassemblyBuffers covers both ways fragments are kept: in one
// buffer charged in full at the first fragment (messages up to
// contiguousMax, returned without a copy when in order), or one buffer
// per fragment charged as it comes (larger messages).
func TestReassemblyBuffers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	node := uuid.New()
	for _, tc := range []struct {
		name      string
		size, per int
		order     []int
		firstCost int // charged after the first fragment
	}{
		{"small, in order", 3000, 1336, []int{0, 1, 2}, partialOverhead + 3*slotOverhead + 3000},
		{"small, out of order", 3000, 1336, []int{2, 0, 1}, partialOverhead + 3*slotOverhead + 3000},
		{"large, in order", contiguousMax + 1, 20000, []int{0, 1, 2, 3}, partialOverhead + 4*slotOverhead + 20000},
		{"large, out of order", contiguousMax + 1, 20000, []int{3, 1, 0, 2}, partialOverhead + 4*slotOverhead + 5537},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := make([]byte, tc.size)
			for i := range msg {
				msg[i] = byte(i * 13 / 7)
			}
			frags := split(uuid.New(), msg, tc.per)
			ra := newReassembler(1<<20, time.Second)
			for i, idx := range tc.order {
				got, res := ra.add(node, &frags[idx], t0)
				if i == 0 && ra.bytes != tc.firstCost {
					t.Errorf("after the first fragment, charged %d bytes, want %d", ra.bytes, tc.firstCost)
				}
				if i < len(tc.order)-1 {
					if res != fragPending {
						t.Fatalf("fragment %d: outcome %d", idx, res)
					}
					continue
				}
				if res != fragComplete || !bytes.Equal(got, msg) {
					t.Fatalf("the last fragment: outcome %d, %d bytes, not the message", res, len(got))
				}
			}
			if ra.bytes != 0 || ra.pending() != 0 {
				t.Errorf("still holds %d bytes in %d messages", ra.bytes, ra.pending())
			}
		})
	}
}
