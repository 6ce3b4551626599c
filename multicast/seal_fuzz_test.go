package multicast

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fuzzSecret is the key FuzzOpen seals its seeds with: the key of the
// sealed test vectors.
const fuzzSecret = "netcluster test vector key"

// FuzzOpen feeds the opener sealed datagrams, changed by the fuzzer, and
// checks that it never panics, that opening in place and into another
// buffer agree, and that what it accepts is exactly what sealing the
// result gives back: nothing it did not seal itself gets through.
func FuzzOpen(f *testing.F) {
	s, err := NewSealer([]byte(fuzzSecret), "lab")
	if err != nil {
		f.Fatal(err)
	}
	datagrams, _ := corpus(f)
	for _, d := range datagrams {
		f.Add(d)
		if sealed, err := s.Seal(nil, d); err == nil {
			f.Add(sealed)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := s.Open([]byte("x"), b)
		inPlace := bytes.Clone(b)
		plain2, err2 := s.Open(inPlace[:0], inPlace)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("opening into a buffer: %v; in place: %v", err, err2)
		}
		if err != nil {
			if string(plain) != "x" {
				t.Fatalf("a failed open changed dst to %x", plain)
			}
			return
		}
		plain = plain[1:]
		if !bytes.Equal(plain, plain2) {
			t.Fatalf("opened\n%x\nin place\n%x", plain, plain2)
		}
		if len(plain) != len(b)-TagLen || plain[4] != 0 {
			t.Fatalf("opened %d bytes into %d, flags %#x", len(b), len(plain), plain[4])
		}
		again, err := s.Seal(nil, plain)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("sealing what was opened gives\n%x, %v\nwant\n%x", again, err, b)
		}
	})
}

// FuzzReplayWindow feeds a replayWin sequence numbers, 8 bytes each, some
// near the last one, and checks each answer against a plain model: a
// number is new when it is not 0, was never accepted, and is less than
// replayWindow below the highest accepted.
func FuzzReplayWindow(f *testing.F) {
	f.Add([]byte{})
	seed := func(seqs ...uint64) []byte {
		var b []byte
		for _, s := range seqs {
			b = binary.BigEndian.AppendUint64(b, s)
		}
		return b
	}
	f.Add(seed(1, 2, 3, 2, 1, 5000, 904, 905, 903, 5000))
	f.Add(seed(10, 10+replayWindow, 11, 10+replayWindow-1, 1<<40, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		var w replayWin
		seen := map[uint64]bool{}
		var top uint64
		for len(b) >= 8 {
			seq := binary.BigEndian.Uint64(b)
			b = b[8:]
			if seq>>32 == 0xffffffff && top > 0 {
				// Near the top: the interesting cases.
				seq = top - replayWindow/2 + uint64(int32(seq))%replayWindow
			}
			want := seq != 0 && !seen[seq] && (seq > top || top-seq < replayWindow)
			if got := w.accept(seq); got != want {
				t.Fatalf("accept(%d) with the highest %d: %v, want %v", seq, top, got, want)
			}
			if want {
				seen[seq] = true
				top = max(top, seq)
			}
		}
	})
}
