package multicast

import (
	"bytes"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// handleLink is a link with no socket, enough for handle: what it
// delivers goes to *got, its logs to logs.
func handleLink(t *testing.T, secret string, got *[]string, logs *strings.Builder) *Link {
	t.Helper()
	l := fuzzLink()
	l.log = slog.New(slog.NewTextHandler(logs, nil))
	l.deliver = func(_ uuid.UUID, msg []byte) { *got = append(*got, string(msg)) }
	if secret != "" {
		l.sealer = mustSealer(t, secret, "lab")
	}
	return l
}

// TestHandleUnseals drives handle with datagrams of each case, without
// sockets.
func TestHandleUnseals(t *testing.T) {
	var got []string
	var logs strings.Builder
	l := handleLink(t, "secret", &got, &logs)
	from := netip.MustParseAddrPort("192.0.2.1:4454")
	now := time.Now()
	sender := mustSealer(t, "secret", "lab")
	node := uuid.New()
	plain := func(seq uint64, msg string) []byte { return plainDatagram(node, KindData, seq, []byte(msg)) }
	seal := func(d []byte) []byte {
		s, err := sender.Seal(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := seal(plain(1, "one"))
	// A repair is sealed as a whole; the original datagram in it is plain.
	repair := func(seq uint64, d []byte) []byte {
		h := Header{Kind: KindRepair, Records: 1, Cluster: ClusterIDOf("lab"), Node: node, Seq: seq}
		return seal(AppendRepairDatagram(AppendHeader(nil, &h), d))
	}
	steps := []struct {
		name  string
		b     []byte
		want  string // delivered, or ""
		count func(Stats) uint64
	}{
		{"sealed", bytes.Clone(first), "one", nil},
		{"replayed", bytes.Clone(first), "", func(s Stats) uint64 { return s.Replayed }},
		{"unsealed", plain(2, "two"), "", func(s Stats) uint64 { return s.Unsealed }},
		{"unsealed, inside a sealed repair", repair(1, plain(2, "two")), "two", nil},
		{"sealed, next", seal(plain(3, "three")), "three", nil},
		{"sealed with another cluster's salt", func() []byte {
			s, _ := mustSealer(t, "secret", "other").Seal(nil, plain(4, "four"))
			return s
		}(), "", func(s Stats) uint64 { return s.Forged }},
		{"sealed, of another cluster", func() []byte {
			d := plain(5, "five")
			id := ClusterIDOf("other")
			copy(d[6:14], id[:])
			s, _ := mustSealer(t, "secret", "other").Seal(nil, d)
			return s
		}(), "", func(s Stats) uint64 { return s.OtherCluster }},
		{"garbage", []byte("garbage"), "", func(s Stats) uint64 { return s.BadMagic }},
	}
	var recs []Record
	for _, st := range steps {
		before := uint64(0)
		if st.count != nil {
			before = st.count(l.Stats())
		}
		n := len(got)
		recs = l.handle(st.b, from, now, recs[:0])
		switch {
		case st.want != "" && (len(got) != n+1 || got[n] != st.want):
			t.Errorf("%s: delivered %q, want %q", st.name, got[n:], st.want)
		case st.want == "" && len(got) != n:
			t.Errorf("%s: delivered %q", st.name, got[n:])
		}
		if st.count != nil && st.count(l.Stats()) != before+1 {
			t.Errorf("%s: not counted: %+v", st.name, l.Stats())
		}
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("the log shows the key:\n%s", logs.String())
	}
}

// TestForgedFloodStaysBounded sends a link forged datagrams of many node
// ids: each is counted, the first maxForgedLogged senders are logged once,
// and neither the log nor the link's memory grows past that.
func TestForgedFloodStaysBounded(t *testing.T) {
	var got []string
	var logs strings.Builder
	l := handleLink(t, "secret", &got, &logs)
	wrong := mustSealer(t, "wrong", "lab")
	from := netip.MustParseAddrPort("192.0.2.1:4454")
	const flood = 3 * maxForgedLogged
	var recs []Record
	for i := range flood {
		d, _ := wrong.Seal(nil, plainDatagram(uuid.New(), KindData, uint64(i+1), []byte("x")))
		recs = l.handle(d, from, time.Now(), recs[:0])
	}
	if s := l.Stats(); s.Forged != flood {
		t.Errorf("forged = %d, want %d", s.Forged, flood)
	}
	if n := strings.Count(logs.String(), "fails authentication"); n != maxForgedLogged {
		t.Errorf("logged %d failures, want %d", n, maxForgedLogged)
	}
	if len(l.sealing.logged) != maxForgedLogged || len(l.sealer.keys) != 0 || len(l.sealing.replay.senders) != 0 {
		t.Errorf("holds %d logged senders, %d keys, %d replay windows", len(l.sealing.logged), len(l.sealer.keys), len(l.sealing.replay.senders))
	}
	if len(got) != 0 {
		t.Errorf("delivered %q", got)
	}
}

// TestHandleSealedAtTopOfSequence: handle returns on a sealed datagram
// numbered MaxUint64, a little above the last of its sender. It spun
// forever in the replay window before.
func TestHandleSealedAtTopOfSequence(t *testing.T) {
	var got []string
	var logs strings.Builder
	l := handleLink(t, "k", &got, &logs)
	peer := uuid.New()
	from := netip.MustParseAddrPort("10.0.0.2:4454")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, seq := range []uint64{math.MaxUint64 - 10, math.MaxUint64} {
			d, err := l.sealer.Seal(nil, plainDatagram(peer, KindData, seq, []byte("hello")))
			if err != nil {
				panic(err)
			}
			l.handle(d, from, time.Now(), nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("handle of a sealed datagram numbered MaxUint64 did not return within 2 s")
	}
	if len(got) != 1 {
		t.Errorf("delivered %q, want the message of the first datagram", got)
	}
}

// TestSealedTopSequenceDoesNotSilence: on a sealed link, a datagram
// numbered MaxUint64 is refused before the replay window takes it: the
// sender's next datagrams are delivered. Before, the window moved to the
// top, and every later datagram of the sender counted as replayed.
func TestSealedTopSequenceDoesNotSilence(t *testing.T) {
	var got []string
	var logs strings.Builder
	l := handleLink(t, "k", &got, &logs)
	peer := uuid.New()
	from := netip.MustParseAddrPort("10.0.0.2:4454")
	now := time.Now()
	seal := func(seq uint64, s string) []byte {
		d, err := l.sealer.Seal(nil, plainDatagram(peer, KindData, seq, []byte(s)))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	l.handle(seal(1, "one"), from, now, nil)
	l.handle(seal(math.MaxUint64, "top"), from, now, nil)
	l.handle(seal(2, "two"), from, now, nil)
	l.handle(seal(3, "three"), from, now, nil)
	if len(got) != 3 {
		t.Errorf("delivered %q, want one, two, three; stats %+v", got, l.Stats())
	}
	if st := l.Stats(); st.Malformed != 1 || st.Replayed != 0 {
		t.Errorf("malformed %d, replayed %d; want 1 and 0", st.Malformed, st.Replayed)
	}
}
