package natslink

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/seeds"
	"github.com/netcluster/netcluster/internal/wire"
)

// TestSeqSeen: the numbers skipped within an epoch are missed; the first
// message of an epoch, one that comes after a later one, a repeat, and a
// value that is not a number count nothing.
func TestSeqSeen(t *testing.T) {
	s := seqSeen{}
	steps := []struct {
		v      string
		n      uint64
		missed uint64
	}{
		{"e1.5", 1, 0},                    // the first heard of e1: nothing before it counts
		{"e1.6", 1, 0},                    // the next
		{"e1.7", 3, 0},                    // a pack of 7, 8, 9
		{"e1.12", 1, 2},                   // 10 and 11 never came
		{"e1.11", 1, 0},                   // late, after 12: not lost, not counted again
		{"e1.12", 1, 0},                   // a repeat
		{"e1.13", 2, 0},                   // 13, 14
		{"e2.40", 1, 0},                   // another epoch: a link of its own
		{"e2.41", 1, 0},                   //
		{"e1.14", 2, 0},                   // overlaps what came: 15 is new, nothing skipped
		{"e1.18", 1, 2},                   // 16 and 17
		{"e2.45", 1, 3},                   // e2 went on apart: 42, 43, 44
		{"e1", 1, 0},                      // not numbered
		{"e1.x", 1, 0},                    //
		{"e1.0", 1, 0},                    // numbers begin at 1
		{"e1.19", 0, 0},                   // no events
		{"e1.30", 1, 11},                  // e1 still expects 19: nothing above changed it
		{".5", 1, 0},                      // an empty epoch is an epoch
		{".9", 1, 3},                      //
		{"e3.18446744073709551615", 2, 0}, // would wrap: ignored
	}
	for i, st := range steps {
		if got := seeText(s, st.v, st.n); got != st.missed {
			t.Errorf("step %d: %q of %d events: %d missed, want %d", i, st.v, st.n, got, st.missed)
		}
	}
	// Past maxEpochs it starts over: the next message of an epoch it
	// knew counts nothing.
	for i := range maxEpochs {
		seeText(s, fmt.Sprintf("x%d.1", i), 1)
	}
	if len(s) > maxEpochs {
		t.Errorf("%d epochs kept, want at most %d", len(s), maxEpochs)
	}
	if got := seeText(s, "e1.100", 1); got != 0 {
		t.Errorf("after starting over, the next message of e1 counts %d missed, want 0", got)
	}
}

// TestMissedIn: past a subscription's pending limits (8 messages) nats.go
// drops what NATS sends while the receiving link's delivery is stuck;
// the numbering shows each event lost, in either format, once a later
// message comes: what the receiver delivered and what it counted missed
// make every event sent. A plain NATS program's events are not numbered,
// and count nothing.
func TestMissedIn(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack bool) { testMissedIn(t, pack) })
}

func testMissedIn(t *testing.T, pack bool) {
	ns := startNATS(t)
	log := &syncBuffer{}
	var delivered atomic.Uint64
	stuck := make(chan struct{})
	var unstick sync.Once
	var waiting atomic.Bool
	recv, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), PendingMsgs: 8,
		Logger: slog.New(slog.NewTextHandler(log, nil))}, func(ev *Event) {
		if ev.Event == "stuck" || string(ev.Header.Event) == "stuck" { // a pack's event names itself in Header
			waiting.Store(true)
			<-stuck
		}
		delivered.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	// Should the test fail while the delivery is stuck, Close (deferred
	// before) must not wait for it forever.
	defer unstick.Do(func() { close(stuck) })
	recv.SetChannels([]string{"A"})
	node := uuid.New()
	send, err := Open(Config{URL: ns.ClientURL(), Node: node, Pack: pack, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	waitFor(t, "the sender among the peers", func() bool { return len(recv.Peers()) == 1 })
	sent := uint64(0)
	emit := func(name string) {
		t.Helper()
		if pack {
			err = send.PublishFrame([]byte("A"), wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node,
				Sender: node, Channel: "A", Event: name, Data: []byte{0xc0}}))
		} else {
			err = send.Publish(&Event{Channel: "A", Event: name, ID: uuid.New(), Origin: node, Sender: node, Data: []byte{0xc0}}, uuid.Nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	emit("stuck")
	waitFor(t, "the delivery to get stuck", waiting.Load)
	// Many more messages than the pending limits take: 2000 events,
	// and more until nats.go drops some (on a busy machine the sender
	// packs more events a message, and makes fewer messages).
	for deadline := time.Now().Add(10 * time.Second); sent < 2000 || recv.Stats().DroppedIn == 0; {
		emit("e")
		if sent%50 == 0 {
			send.nc.Flush()
			if time.Now().After(deadline) {
				t.Fatalf("%d events sent, and nats.go dropped none", sent)
			}
		}
	}
	send.nc.Flush()
	unstick.Do(func() { close(stuck) })
	// The last message shows what was skipped before it: it is sent
	// until one arrives, and those dropped meanwhile are missed too.
	waitFor(t, "a last event", func() bool {
		emit("e")
		send.nc.Flush()
		time.Sleep(5 * time.Millisecond)
		return delivered.Load()+recv.Stats().MissedIn == sent
	})
	st := recv.Stats()
	if st.MissedIn == 0 || st.DroppedIn == 0 {
		t.Fatalf("%d missed, %d messages dropped: the test dropped nothing", st.MissedIn, st.DroppedIn)
	}
	if !pack && st.DroppedIn != st.MissedIn {
		t.Errorf("%d messages of one event dropped, %d events missed; want as many", st.DroppedIn, st.MissedIn)
	}
	if pack && st.DroppedIn > st.MissedIn {
		t.Errorf("%d packs dropped, %d events missed; want at least one event a pack", st.DroppedIn, st.MissedIn)
	}
	if c := strings.Count(log.String(), "their sender's numbering skips them"); c != 1 {
		t.Errorf("%d log lines about the missed events; want 1", c)
	}
	if p := recv.Peers(); len(p) != 1 || p[0].Node != node || p[0].Missed != st.MissedIn {
		t.Errorf("peers %+v; want the sender, with its %d events missed", p, st.MissedIn)
	}
	t.Logf("%d of %d events delivered, %d missed, %d messages dropped", delivered.Load(), sent, st.MissedIn, st.DroppedIn)

	// A plain NATS program's events carry no number: nothing is missed
	// when some of them are lost.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	before := delivered.Load()
	for range 3 {
		m := nats.NewMsg(Subject("netcluster", "", "A"))
		m.Header.Set(HeaderEvent, "plain")
		m.Data = []byte{0xc0}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	waitFor(t, "the plain events", func() bool { return delivered.Load() == before+3 })
	if got := recv.Stats().MissedIn; got != st.MissedIn {
		t.Errorf("missed_in went from %d to %d with a plain program's events", st.MissedIn, got)
	}
}

// seeText is seqSeen.see of a HeaderSeq value as a message carries it.
func seeText(s seqSeen, v string, n uint64) uint64 {
	num, _ := seqOf(v)
	return s.see(num, n)
}

// FuzzSeqSeen feeds seqSeen lines of "<Nc-Seq value> <events>", as
// messages bring them (seeds in testdata/fuzz/seq): it never panics,
// never counts missed more numbers than came before a message's first,
// keeps at most maxEpochs epochs, and a message that follows on from
// the last of its epoch counts nothing.
func FuzzSeqSeen(f *testing.F) {
	for _, b := range seeds.Load(f, "../testdata/fuzz/seq") {
		f.Add(string(b.Data))
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := seqSeen{}
		for _, line := range strings.Split(in, "\n") {
			v, count, _ := strings.Cut(line, " ")
			n, err := strconv.ParseUint(count, 10, 64)
			if err != nil {
				continue
			}
			missed := seeText(s, v, n)
			epoch, num, _ := strings.Cut(v, ".")
			first, err := strconv.ParseUint(num, 10, 64)
			if missed > 0 && (err != nil || missed >= first) {
				t.Fatalf("%q of %d events: %d missed", v, n, missed)
			}
			if len(s) > maxEpochs {
				t.Fatalf("%d epochs kept", len(s))
			}
			if next, ok := s[epoch]; ok && next > 1 {
				if got := seeText(s, fmt.Sprintf("%s.%d", epoch, next), 1); got != 0 {
					t.Fatalf("the message that follows on from %q counted %d missed", v, got)
				}
			}
		}
	})
}

// TestNumberingAcrossSwap: a link that takes over from another on the
// same subjects (CloseInto) goes on with its numbering, from one format
// to the other: the same epoch, and the numbers after the last one. One
// on other subjects starts its own.
func TestNumberingAcrossSwap(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("netcluster.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	node := uuid.New()
	open := func(pack bool, cluster string) *Link {
		l, err := Open(Config{URL: ns.ClientURL(), Node: node, Pack: pack, Cluster: cluster, Held: true,
			Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	emit := func(l *Link, n int) {
		for range n {
			var err error
			if l.Packing() {
				err = l.PublishFrame([]byte("A"), wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node,
					Sender: node, Channel: "A", Event: "e", Data: []byte{0xc0}}))
			} else {
				err = l.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: []byte{0xc0}}, uuid.Nil)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// seqs reads the numbering of the events of n of them, as
	// "<epoch>.<number>" per event.
	seqs := func(n int) []string {
		var out []string
		for len(out) < n {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("after %d of %d events: %v", len(out), n, err)
			}
			if strings.Contains(m.Subject, ".$hb.") {
				continue
			}
			epoch, num, _ := strings.Cut(m.Header.Get(HeaderSeq), ".")
			first, err := strconv.Atoi(num)
			if err != nil {
				t.Fatalf("a message numbered %q", m.Header.Get(HeaderSeq))
			}
			events := 1
			if v := m.Header.Get(HeaderPack); v != "" {
				events, _ = strconv.Atoi(v)
			}
			for i := range events {
				out = append(out, fmt.Sprintf("%s.%d", epoch, first+i))
			}
		}
		return out
	}
	l1 := open(false, "")
	l1.Release()
	emit(l1, 3)
	l2 := open(true, "")
	l1.CloseInto(l2)
	l2.Release()
	emit(l2, 3)
	l3 := open(false, "")
	l2.CloseInto(l3)
	l3.Release()
	emit(l3, 2)
	got := seqs(8)
	epoch, _, _ := strings.Cut(got[0], ".")
	for i, s := range got {
		if want := fmt.Sprintf("%s.%d", epoch, i+1); s != want {
			t.Errorf("event %d across two swaps is numbered %s, want %s (all: %v)", i, s, want, got)
		}
	}
	// Another cluster: other subjects, a numbering of its own.
	l4 := open(false, "other")
	l3.CloseInto(l4)
	l4.Release()
	defer l4.Close()
	emit(l4, 1)
	if s := seqs(1)[0]; strings.HasPrefix(s, epoch+".") || !strings.HasSuffix(s, ".1") {
		t.Errorf("the first event on another cluster's subjects is numbered %s; want a new epoch, from 1", s)
	}
}
