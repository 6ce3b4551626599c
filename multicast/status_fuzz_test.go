package multicast

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzStatus drives a sender's flow control with a stream of status
// entries, writes and clock steps read from the input, 16 bytes a step:
//
//	byte 0     the receiver (0..3), or, with bit 7 set, a write of
//	           stream 0 up to the position field
//	byte 1     milliseconds the clock moves on first
//	bytes 2-9  position
//	bytes 10-13 window
//	bytes 14-15 ignored
//
// Through it all, the limit is the lowest position + window of the live
// receivers, no silent receiver counts, and what the history may free
// never passes a live receiver's position.
func FuzzStatus(f *testing.F) {
	for _, seed := range [][]byte{
		step(0, 1, 10, 100), step(1, 1, 5, 20),
		append(step(0, 1, 10, 100), step(0x80, 1, 200, 0)...),
		append(append(step(0, 1, 10, 100), step(1, 255, 0, 0)...), step(1, 255, 300, 16)...),
	} {
		f.Add(seed)
	}
	f.Add(append(step(0, 1, math.MaxUint64-3, 100), step(1, 1, 5, 20)...)) // position + window past the largest number
	f.Fuzz(func(t *testing.T, in []byte) {
		fl := newFlow()
		fl.configure(FlowMin, 300*time.Millisecond)
		nodes := [4]uuid.UUID{{1}, {2}, {3}, {4}}
		now := time.Unix(1, 0)
		for ; len(in) >= 16; in = in[16:] {
			now = now.Add(time.Duration(in[1]) * time.Millisecond)
			pos := binary.BigEndian.Uint64(in[2:])
			if in[0]&0x80 != 0 {
				fl.wrote(pos)
				continue
			}
			e := StatusEntry{Node: uuid.UUID{9}, Position: pos, Window: binary.BigEndian.Uint32(in[10:])}
			low, ok := fl.report(nodes[in[0]%4], e, now)
			checkFlow(t, fl, now, low, ok)
		}
	})
}

// checkFlow checks the flow's limit against its receivers, and that low
// (ok: there are live receivers) is no more than a live one's position.
func checkFlow(t *testing.T, fl *flow, now time.Time, low uint64, ok bool) {
	t.Helper()
	fl.mu.Lock()
	defer fl.mu.Unlock()
	lim, _, _ := fl.limit(now)
	want := uint64(math.MaxUint64)
	live := false
	for _, r := range fl.rcv {
		if now.Sub(r.last) > fl.timeout {
			t.Fatalf("receiver %v silent for %v still counts", r.node, now.Sub(r.last))
		}
		if !r.live {
			continue
		}
		live = true
		want = min(want, r.end())
		if ok && low > r.pos {
			t.Fatalf("the history may be freed to %d, past live receiver %v at %d", low, r.node, r.pos)
		}
	}
	if lim != want {
		t.Fatalf("limit %d, want %d", lim, want)
	}
	if ok && !live {
		t.Fatalf("low %d with no live receiver", low)
	}
}

func step(who byte, ms byte, pos uint64, win uint32) []byte {
	b := []byte{who, ms}
	b = binary.BigEndian.AppendUint64(b, pos)
	b = binary.BigEndian.AppendUint32(b, win)
	return append(b, 0, 0)
}
