package multicast

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
)

// plainDatagram is a data datagram of cluster "lab" from node with one
// record of payload.
func plainDatagram(node uuid.UUID, kind Kind, seq uint64, payload []byte) []byte {
	h := Header{Kind: kind, Records: 1, Cluster: ClusterIDOf("lab"), Node: node, Seq: seq}
	r := Record{ID: uuid.New(), Count: 1, Total: len(payload), Payload: payload}
	return AppendRecord(AppendHeader(nil, &h), &r)
}

func mustSealer(t testing.TB, secret, cluster string) *Sealer {
	t.Helper()
	s, err := NewSealer([]byte(secret), cluster)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustSealer(t, "secret", "lab")
	node := uuid.New()
	for _, kind := range []Kind{KindData, KindHeartbeat, 3, 4} {
		plain := plainDatagram(node, kind, 7, []byte("hello, sealed world"))
		sealed, err := s.Seal(nil, plain)
		if err != nil {
			t.Fatalf("%v: %v", kind, err)
		}
		if len(sealed) != len(plain)+TagLen {
			t.Errorf("%v: sealed %d bytes into %d, want %d", kind, len(plain), len(sealed), len(plain)+TagLen)
		}
		if sealed[4] != FlagSealed || !bytes.Equal(sealed[:4], plain[:4]) || !bytes.Equal(sealed[5:HeaderLen], plain[5:HeaderLen]) {
			t.Errorf("%v: sealed header %x, want the plain one %x with flag bit 0", kind, sealed[:HeaderLen], plain[:HeaderLen])
		}
		if bytes.Contains(sealed, []byte("hello")) {
			t.Errorf("%v: the sealed datagram shows its payload", kind)
		}
		// A receiver's Sealer, with no key cached, opens it.
		r := mustSealer(t, "secret", "lab")
		got, err := r.Open([]byte("prefix"), sealed)
		if err != nil {
			t.Fatalf("%v: open: %v", kind, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), plain...)) {
			t.Errorf("%v: opened\n%x\nwant\n%x", kind, got, plain)
		}
		// And in place.
		again := bytes.Clone(sealed)
		got, err = r.Open(again[:0], again)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%v: opening in place: %v\n%x\nwant\n%x", kind, err, got, plain)
		}
	}
}

func TestSealedDiffersByStreamAndNode(t *testing.T) {
	s := mustSealer(t, "secret", "lab")
	node := uuid.New()
	// The same body under another kind of the same stream, another
	// stream, another node: the ciphertexts all differ.
	seen := map[string]string{}
	for _, c := range []struct {
		name string
		node uuid.UUID
		kind Kind
	}{{"data", node, KindData}, {"repair", node, 4}, {"other node", uuid.New(), KindData}} {
		plain := plainDatagram(node, c.kind, 1, []byte("same body"))
		copy(plain[14:30], c.node[:])
		sealed, err := s.Seal(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		ct := string(sealed[HeaderLen+16:]) // past the message id, which is random
		if prev, ok := seen[ct]; ok {
			t.Errorf("%s and %s give the same ciphertext", prev, c.name)
		}
		seen[ct] = c.name
	}
}

func TestOpenRefuses(t *testing.T) {
	s := mustSealer(t, "secret", "lab")
	node := uuid.New()
	plain := plainDatagram(node, KindData, 9, []byte("payload"))
	sealed, err := s.Seal(nil, plain)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 0x01; return b }
	other := func(secret, cluster string) []byte {
		b, err := mustSealer(t, secret, cluster).Seal(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"another key", other("wrong", "lab"), ErrForged},
		{"another cluster's salt", other("secret", "other"), ErrForged},
		{"a flipped bit in the record count", flip(5), ErrForged},
		{"a flipped bit in the node id", flip(20), ErrForged},
		{"a flipped bit in the sequence number", flip(37), ErrForged},
		{"a flipped bit in the kind: another stream", func() []byte { b := bytes.Clone(sealed); b[3] = 4; return b }(), ErrForged},
		{"a flipped bit in the body", flip(HeaderLen + 3), ErrForged},
		{"a flipped bit in the tag", flip(len(sealed) - 1), ErrForged},
		{"cut short", sealed[:len(sealed)-1], ErrForged},
		{"only a header", sealed[:HeaderLen], ErrForged},
		{"not sealed", plain, ErrKind},
		{"unknown flags", func() []byte { b := bytes.Clone(sealed); b[4] = 3; return b }(), ErrKind},
		{"unknown kind", func() []byte { b := bytes.Clone(sealed); b[3] = 9; return b }(), ErrKind},
		{"truncated header", sealed[:20], ErrTruncated},
		{"bad magic", flip(0), ErrMagic},
		{"bad version", flip(2), ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Open([]byte("dst"), tc.b)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if string(got) != "dst" {
				t.Errorf("dst became %q", got)
			}
		})
	}
}

func TestSealRefusesWhatItCannotSeal(t *testing.T) {
	s := mustSealer(t, "secret", "lab")
	plain := plainDatagram(uuid.New(), KindData, 1, []byte("x"))
	sealed, _ := s.Seal(nil, plain)
	for _, b := range [][]byte{plain[:10], sealed, func() []byte { b := bytes.Clone(plain); b[3] = 9; return b }()} {
		if out, err := s.Seal([]byte("dst"), b); err == nil || string(out) != "dst" {
			t.Errorf("sealing %x: %q, %v; want an error and dst unchanged", b[:min(len(b), 8)], out, err)
		}
	}
	if _, err := NewSealer(nil, "lab"); err == nil {
		t.Error("NewSealer took an empty key")
	}
	if str := fmt.Sprint(mustSealer(t, "topsecret", "lab")); bytes.Contains([]byte(str), []byte("topsecret")) {
		t.Errorf("a Sealer prints its key: %s", str)
	}
}

// TestSealerCacheIsBounded opens forged datagrams of many node ids and
// genuine ones of more nodes than the cache holds: only the genuine are
// kept, at most maxSealKeys of them.
func TestSealerCacheIsBounded(t *testing.T) {
	s := mustSealer(t, "secret", "lab")
	wrong := mustSealer(t, "wrong", "lab")
	for range 100 {
		b, _ := wrong.Seal(nil, plainDatagram(uuid.New(), KindData, 1, []byte("x")))
		if _, err := s.Open(nil, b); !errors.Is(err, ErrForged) {
			t.Fatal(err)
		}
	}
	if n := len(s.keys); n != 0 {
		t.Errorf("forged datagrams left %d keys in the cache", n)
	}
	sender := mustSealer(t, "secret", "lab")
	for range maxSealKeys + 50 {
		b, _ := sender.Seal(nil, plainDatagram(uuid.New(), KindData, 1, []byte("x")))
		if _, err := s.Open(nil, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.keys); n != maxSealKeys {
		t.Errorf("the cache holds %d keys, want %d", n, maxSealKeys)
	}
}

func TestWindow(t *testing.T) {
	type step struct {
		seq  uint64
		want bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{1, true}, {2, true}, {3, true}}},
		{"again", []step{{1, true}, {1, false}, {2, true}, {1, false}, {2, false}}},
		{"zero", []step{{0, false}, {1, true}, {0, false}}},
		{"starts anywhere", []step{{1000, true}, {1001, true}, {999, true}, {999, false}}},
		{"late within the window", []step{{5, true}, {100, true}, {6, true}, {6, false}, {99, true}}},
		{"older than the window", []step{{1, true}, {replayWindow + 1, true}, {1, false}, {2, true}, {2, false}}},
		{"a jump past the window forgets", []step{{10, true}, {10 + 3*replayWindow, true}, {11, false}, {10 + 3*replayWindow - 1, true}}},
		{"slot reuse", []step{{1, true}, {2, true}, {replayWindow + 1, true}, {replayWindow + 2, true}, {replayWindow + 2, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w replayWin
			for i, s := range tc.steps {
				if got := w.accept(s.seq); got != s.want {
					t.Errorf("step %d: accept(%d) = %v, want %v", i, s.seq, got, s.want)
				}
			}
		})
	}
}

// TestWindowAtTopOfSequence: accepting the largest sequence number,
// a little above the highest accepted, returns and marks it. The loop
// that cleared the bits between ran up to and including seq, and never
// ended for MaxUint64.
func TestWindowAtTopOfSequence(t *testing.T) {
	type answers struct{ first, again bool }
	done := make(chan answers, 1)
	go func() {
		var w replayWin
		w.accept(math.MaxUint64 - 10)
		first := w.accept(math.MaxUint64)
		done <- answers{first, w.accept(math.MaxUint64)}
	}()
	select {
	case a := <-done:
		if !a.first || a.again {
			t.Errorf("accept(MaxUint64) = %v, then %v; want true, then false", a.first, a.again)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("accept(MaxUint64) did not return within 2 s")
	}
}

// TestWindowLong runs a window over many numbers, each arriving late by
// up to half a window, and checks each is accepted once.
func TestWindowLong(t *testing.T) {
	var w replayWin
	const n = 5 * replayWindow
	order := make([]uint64, 0, n)
	for base := uint64(1); base <= n; base += 64 {
		for i := uint64(63); i+1 > 0; i-- { // each block of 64 backwards
			order = append(order, base+i)
		}
	}
	for _, s := range order {
		if !w.accept(s) {
			t.Fatalf("%d refused the first time", s)
		}
	}
	for _, s := range order[len(order)-replayWindow/2:] {
		if w.accept(s) {
			t.Fatalf("%d accepted twice", s)
		}
	}
}

func TestReplayGuardKeepsStreamsApartAndIsBounded(t *testing.T) {
	g := newReplayGuard()
	now := time.Now()
	a := uuid.New()
	if !g.accept(a, 0, 5, now) || !g.accept(a, 1, 5, now) {
		t.Fatal("the two streams share numbers")
	}
	if g.accept(a, 0, 5, now) || g.accept(a, 1, 5, now) {
		t.Fatal("a replay was accepted")
	}
	// a stays quiet while more nodes than the guard holds speak.
	for i := range maxReplayNodes {
		if !g.accept(uuid.New(), 0, 1, now.Add(time.Duration(i+1)*time.Millisecond)) {
			t.Fatal("a new node's first datagram was refused")
		}
	}
	if n := len(g.senders); n != maxReplayNodes {
		t.Errorf("the guard holds %d senders, want %d", n, maxReplayNodes)
	}
	if _, ok := g.senders[a]; ok {
		t.Error("the quietest sender was kept, another forgotten")
	}
}
