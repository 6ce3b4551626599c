package multicast

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// orderRig drives an orderer for one peer and records the sequence
// numbers it processes, in order.
type orderRig struct {
	o    *orderer
	node uuid.UUID
	now  time.Time
	got  []uint64
}

func newOrderRig(holdPeer, holdTotal int) *orderRig {
	r := &orderRig{
		node: uuid.MustParse("6e6f6465-0000-4000-8000-000000000001"),
		now:  time.Unix(1000, 0),
	}
	r.o = newOrderer(r.inTurn, holdPeer, holdTotal, time.Second, 10*time.Millisecond, 4)
	return r
}

// datagram is a stand-in datagram of 100 bytes carrying its number.
func rigDatagram(seq uint64) []byte {
	d := make([]byte, 100)
	binary.BigEndian.PutUint64(d, seq)
	return d
}

func (r *orderRig) inTurn(node uuid.UUID, h *Header, d []byte, recs []Record) {
	r.got = append(r.got, binary.BigEndian.Uint64(d))
}

// arrive hands the orderer datagram seq of the rig's peer.
func (r *orderRig) arrive(seq uint64, repair bool) arrivalResult {
	return r.arriveFrom(r.node, seq, repair)
}

// arriveFrom hands the orderer datagram seq of node.
func (r *orderRig) arriveFrom(node uuid.UUID, seq uint64, repair bool) arrivalResult {
	return r.o.arrive(&arrival{node: node, seq: seq, d: rigDatagram(seq), repair: repair}, r.now)
}

func (r *orderRig) tick(after time.Duration) []nakReq {
	r.now = r.now.Add(after)
	naks, _ := r.o.tick(r.now)
	return naks
}

func seqs(first, last uint64) []uint64 {
	var s []uint64
	for i := first; i <= last; i++ {
		s = append(s, i)
	}
	return s
}

func TestOrderer(t *testing.T) {
	type step struct {
		seq    uint64        // hand the orderer this one, unless 0
		repair bool          // inside a repair
		gone   SeqRange      // the sender says it is gone, when set
		tick   time.Duration // run the timer this much later, when set
	}
	tests := []struct {
		name                   string
		steps                  []step
		want                   []uint64
		lost, repaired, outOfO uint64
		dup                    uint64
	}{
		{name: "in order", steps: []step{{seq: 1}, {seq: 2}, {seq: 3}}, want: seqs(1, 3)},
		{name: "starts at the first heard", steps: []step{{seq: 100}, {seq: 101}}, want: seqs(100, 101)},
		{name: "reordered", steps: []step{{seq: 1}, {seq: 3}, {seq: 4}, {seq: 2}}, want: seqs(1, 4), outOfO: 2},
		{name: "repaired", steps: []step{{seq: 1}, {seq: 3}, {seq: 2, repair: true}}, want: seqs(1, 3), repaired: 1, outOfO: 1},
		{name: "timed out", steps: []step{{seq: 1}, {seq: 4}, {tick: 999 * time.Millisecond}, {tick: time.Millisecond}},
			want: []uint64{1, 4}, lost: 2, outOfO: 1},
		{name: "gone", steps: []step{{seq: 1}, {seq: 5}, {gone: SeqRange{2, 3}}, {seq: 4, repair: true}},
			want: []uint64{1, 4, 5}, lost: 2, repaired: 1, outOfO: 1},
		{name: "gone beyond the gap", steps: []step{{seq: 1}, {seq: 3}, {gone: SeqRange{1, 10}}}, want: []uint64{1, 3}, lost: 1, outOfO: 1},
		{name: "duplicates", steps: []step{{seq: 1}, {seq: 1}, {seq: 3}, {seq: 3}, {seq: 2}, {seq: 2, repair: true}},
			want: seqs(1, 3), dup: 2, outOfO: 1},
		{name: "late after a skip", steps: []step{{seq: 1}, {seq: 3}, {tick: 2 * time.Second}, {seq: 2}}, want: []uint64{1, 3}, lost: 1, outOfO: 1, dup: 1},
		{name: "repair for the past of a new peer", steps: []step{{seq: 10}, {seq: 9, repair: true}, {seq: 9}}, want: []uint64{10}, dup: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newOrderRig(1<<20, 1<<20)
			for _, s := range tc.steps {
				switch {
				case s.seq != 0:
					r.arrive(s.seq, s.repair)
				case s.gone != SeqRange{}:
					r.o.gone(r.node, s.gone, r.now)
				default:
					r.tick(s.tick)
				}
			}
			if !slices.Equal(r.got, tc.want) {
				t.Errorf("processed %v, want %v", r.got, tc.want)
			}
			o := r.o
			if o.lost != tc.lost || o.repaired != tc.repaired || o.outOfOrder != tc.outOfO || o.dup != tc.dup {
				t.Errorf("lost %d, repaired %d, out of order %d, late %d; want %d, %d, %d, %d",
					o.lost, o.repaired, o.outOfOrder, o.dup, tc.lost, tc.repaired, tc.outOfO, tc.dup)
			}
			if lost, rep := o.counts(r.node); lost != tc.lost || rep != tc.repaired {
				t.Errorf("the peer's counts: lost %d, repaired %d", lost, rep)
			}
		})
	}
}

func TestOrdererNAKs(t *testing.T) {
	r := newOrderRig(1<<20, 1<<20)
	r.arrive(1, false)
	r.arrive(3, false)
	r.arrive(6, false)
	if !r.o.newGap {
		t.Error("no new gap flagged")
	}
	if naks := r.tick(5 * time.Millisecond); len(naks) != 0 {
		t.Errorf("NAKed %v before the NAK delay", naks)
	}
	naks := r.tick(5 * time.Millisecond)
	want := []SeqRange{{2, 2}, {4, 5}}
	if len(naks) != 1 || naks[0].node != r.node || !slices.Equal(naks[0].ranges, want) {
		t.Fatalf("NAKs %+v, want %v", naks, want)
	}
	if naks := r.tick(time.Millisecond); len(naks) != 0 {
		t.Errorf("NAKed again at once: %v", naks)
	}
	// Backoff: the next NAK comes later, and later again.
	var at []time.Duration
	start := r.now
	for range 200 {
		if naks := r.tick(5 * time.Millisecond); len(naks) > 0 {
			at = append(at, r.now.Sub(start))
		}
	}
	if len(at) < 3 {
		t.Fatalf("NAKed again at %v", at)
	}
	for i := 2; i < len(at); i++ {
		if at[i]-at[i-1] < at[i-1]-at[max(0, i-2)] && at[i]-at[i-1] < maxNAKBackoff {
			t.Errorf("NAK intervals shrink: %v", at)
		}
	}
	// At most maxRanges (4) ranges per NAK.
	r = newOrderRig(1<<20, 1<<20)
	for s := uint64(1); s < 20; s += 2 {
		r.arrive(s, false)
	}
	if naks := r.tick(time.Second / 2); len(naks) != 1 || len(naks[0].ranges) != 4 {
		t.Errorf("NAKs %+v, want one of 4 ranges", naks)
	}
}

// TestOrdererHearsOtherNAKs: a NAK from another receiver that covers a
// gap holds this receiver's own NAK back; one that covers only part of
// it does not.
func TestOrdererHearsOtherNAKs(t *testing.T) {
	r := newOrderRig(1<<20, 1<<20)
	r.arrive(1, false)
	r.arrive(3, false)
	r.arrive(7, false) // gaps 2 and 4..6
	r.o.heard(r.node, []SeqRange{{2, 2}, {4, 5}}, r.now.Add(5*time.Millisecond))
	naks := r.tick(10 * time.Millisecond)
	if len(naks) != 1 || !slices.Equal(naks[0].ranges, []SeqRange{{4, 6}}) || r.o.suppressed != 1 {
		t.Errorf("NAKs %+v (%d held back); want only 4..6, 2 held back", naks, r.o.suppressed)
	}
	r.o.heard(uuid.New(), []SeqRange{{1, 100}}, r.now) // a peer it has no window for
}

// TestOrdererBounds holds more than the bound allows: the oldest gaps are
// skipped, and what they held back is processed in order.
func TestOrdererBounds(t *testing.T) {
	const cost = 100 + heldOverhead
	r := newOrderRig(10*cost, 1<<20)
	r.arrive(1, false)
	for s := uint64(3); s < 100; s += 2 {
		r.arrive(s, false)
		if r.o.held > 10*cost {
			t.Fatalf("holds %d bytes, the bound is %d", r.o.held, 10*cost)
		}
	}
	if !slices.IsSorted(r.got) || len(r.got) < 30 {
		t.Errorf("processed %v", r.got)
	}
	// The total bound, over two peers.
	r = newOrderRig(1<<20, 10*cost)
	other := uuid.New()
	r.arrive(1, false)
	r.arriveFrom(other, 1, false)
	for s := uint64(3); s < 100; s += 2 {
		r.arrive(s, false)
		r.arriveFrom(other, s, false)
		if r.o.held > 10*cost {
			t.Fatalf("holds %d bytes, the bound is %d", r.o.held, 10*cost)
		}
	}
	// A window table that is full processes new peers out of order.
	r = newOrderRig(1<<20, 1<<20)
	for range maxPeers {
		r.arriveFrom(uuid.New(), 1, false)
	}
	if res := r.arrive(5, false); res != arrivalUnordered {
		t.Errorf("a peer past the table's bound: %v", res)
	}
}

func TestOrdererAgesSilentPeers(t *testing.T) {
	r := newOrderRig(1<<20, 1<<20)
	r.arrive(1, false)
	r.arrive(3, false)
	r.now = r.now.Add(500 * time.Millisecond)
	r.o.age(r.now, time.Second)
	if len(r.o.wins) != 1 {
		t.Fatal("aged a peer heard lately")
	}
	r.now = r.now.Add(time.Second)
	r.o.age(r.now, time.Second)
	if len(r.o.wins) != 0 || !slices.Equal(r.got, []uint64{1, 3}) || r.o.lost != 1 || r.o.held != 0 {
		t.Errorf("after aging: %d windows, processed %v, lost %d, held %d", len(r.o.wins), r.got, r.o.lost, r.o.held)
	}
	if len(r.o.logs) != 2 || !r.o.logs[0].start || r.o.logs[1].lost != 1 {
		t.Errorf("logs %+v, want an episode's start and end", r.o.logs)
	}
}

// TestOrdererReportsWhatItCannotPlace: a number inside a window that
// is neither held nor in a gap, which the window's invariant rules out,
// is not dropped silently: the orderer reports it to its caller, which
// counts it. The state is reached here by a datagram numbered MaxUint64,
// which wraps the window's next number to 0 (the link refuses that
// number before the orderer sees it). Before, the datagram was reported
// a duplicate, and not counted as one.
func TestOrdererReportsWhatItCannotPlace(t *testing.T) {
	r := newOrderRig(DefaultHoldPeer, DefaultHoldTotal)
	r.arrive(1, false)
	r.arrive(math.MaxUint64, false) // held behind the gap 2..MaxUint64-1
	r.tick(2 * time.Second)         // the gap times out: skipped, and next wraps
	dup := r.o.dup
	if res := r.arrive(2, false); res == arrivalDuplicate && r.o.dup == dup || res == arrivalTaken {
		t.Errorf("datagram 2, after next wrapped to %d: result %d, duplicates %d -> %d", r.o.wins[r.node].next, res, dup, r.o.dup)
	}
}

// checkOrderer checks the invariants of every window.
func checkOrderer(t *testing.T, o *orderer) {
	t.Helper()
	total := 0
	for node, w := range o.wins {
		for seq := range w.held {
			if seq <= w.next || seq > w.high {
				t.Fatalf("%v: holds %d outside (%d, %d]", node, seq, w.next, w.high)
			}
		}
		var inGaps uint64
		for i, g := range w.gaps {
			if g.First > g.Last || g.First < w.next || g.Last > w.high || i > 0 && g.First <= w.gaps[i-1].Last {
				t.Fatalf("%v: gaps %+v in [%d, %d]", node, w.gaps, w.next, w.high)
			}
			inGaps += g.Len()
		}
		if w.high >= w.next && w.high-w.next < 1<<20 && inGaps+uint64(len(w.held)) != w.high-w.next+1 {
			t.Fatalf("%v: %d held and %d in gaps, but [%d, %d] has %d", node, len(w.held), inGaps, w.next, w.high, w.high-w.next+1)
		}
		if w.heldBytes > o.holdPeer {
			t.Fatalf("%v holds %d bytes, bound %d", node, w.heldBytes, o.holdPeer)
		}
		total += w.heldBytes
	}
	if total != o.held || o.held > o.holdTotal {
		t.Fatalf("holds %d bytes (windows say %d), bound %d", o.held, total, o.holdTotal)
	}
}

// FuzzOrder feeds an orderer arbitrary sequences of datagrams, repairs,
// "gone" ranges and timer runs from three peers, and checks that it never
// processes a number twice or out of order, keeps its invariants, and
// stays within its bounds.
func FuzzOrder(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3})
	f.Add([]byte{0, 1, 0, 5, 1, 3, 2, 2, 3, 50, 0, 4})
	f.Add([]byte{0, 200, 4, 9, 0, 1, 0, 255, 0, 7, 3, 200, 1, 6})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const cost = 100 + heldOverhead
		nodes := []uuid.UUID{{1}, {2}, {3}}
		now := time.Unix(1000, 0)
		last := map[uuid.UUID]uint64{}
		seen := map[uuid.UUID]map[uint64]bool{}
		inTurn := func(node uuid.UUID, h *Header, d []byte, recs []Record) {
			s := binary.BigEndian.Uint64(d)
			if s <= last[node] && last[node] != 0 || seen[node][s] {
				t.Fatalf("%v: processed %d after %d", node, s, last[node])
			}
			last[node] = s
			if seen[node] == nil {
				seen[node] = map[uint64]bool{}
			}
			seen[node][s] = true
		}
		o := newOrderer(inTurn, 8*cost, 12*cost, time.Second, 10*time.Millisecond, 4)
		base := map[uuid.UUID]uint64{}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], uint64(ops[i+1])
			node := nodes[int(op>>3)%len(nodes)]
			if base[node] == 0 {
				base[node] = 1000
			}
			seq := base[node] + arg
			switch op & 7 {
			case 0, 5, 6:
				o.arrive(&arrival{node: node, seq: seq, d: rigDatagram(seq)}, now)
			case 1:
				o.arrive(&arrival{node: node, seq: seq, d: rigDatagram(seq), repair: true}, now)
			case 2:
				o.gone(node, SeqRange{seq, seq + arg%7}, now)
			case 3:
				now = now.Add(time.Duration(arg) * 10 * time.Millisecond)
				naks, _ := o.tick(now)
				for _, n := range naks {
					if len(n.ranges) == 0 || len(n.ranges) > 4 {
						t.Fatalf("a NAK of %d ranges", len(n.ranges))
					}
				}
			case 4:
				base[node] += arg * 100 // a jump
			case 7:
				now = now.Add(time.Duration(arg) * 50 * time.Millisecond)
				o.age(now, 5*time.Second)
				for _, n := range nodes {
					if o.wins[n] == nil { // forgotten: a new start may come lower
						delete(last, n)
						delete(seen, n)
					}
				}
			}
			checkOrderer(t, o)
		}
		// Once every peer is silent, everything held has been processed.
		o.age(now.Add(time.Hour), time.Second)
		if len(o.wins) != 0 || o.held != 0 {
			t.Fatalf("after aging: %d windows, %d bytes held", len(o.wins), o.held)
		}
	})
}
