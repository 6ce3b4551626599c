package multicast_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
)

// numbered is message i: its number, then filler up to n bytes.
func numbered(i, n int) []byte {
	m := bytes.Repeat([]byte{byte(i)}, max(n, 4))
	binary.BigEndian.PutUint32(m, uint32(i))
	return m
}

// checkNumbered checks that msgs are numbered messages in increasing
// order, each at most once, and returns their numbers.
func checkNumbered(t *testing.T, msgs [][]byte) []int {
	t.Helper()
	var got []int
	for _, m := range msgs {
		i := int(binary.BigEndian.Uint32(m))
		if len(got) > 0 && i <= got[len(got)-1] {
			t.Fatalf("message %d arrived after %d", i, got[len(got)-1])
		}
		got = append(got, i)
	}
	return got
}

// sendNumbered sends messages from..to-1 from l, every tenth one large
// enough to need several datagrams, retrying while the send queue is
// full.
func sendNumbered(t *testing.T, l *testLink, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		n := 100
		if i%10 == 0 {
			n = 3000
		}
		for {
			err := l.Send(uuid.New(), numbered(i, n))
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "queue full") {
				t.Fatal(err)
			}
		}
	}
}

// TestRepairUnderLoss drops a share of the datagrams the receiver reads
// (data, heartbeats and repairs alike): every message must still arrive,
// exactly once, in the order sent.
func TestRepairUnderLoss(t *testing.T) {
	mcasttest.Need(t)
	for _, perMille := range []uint64{50, 300} {
		t.Run(fmt.Sprintf("%d%%", perMille/10), func(t *testing.T) {
			port := mcasttest.Port()
			a := openLink(t, config(port))
			cfg := config(port)
			// Long enough that a datagram whose repairs are lost too
			// (30% each time) is asked for dozens of times, also on a
			// machine so busy that the test's threads wait.
			cfg.GapTimeout = 20 * time.Second
			drop, dropped := multicast.DropReads(&cfg, perMille)
			b := openLink(t, cfg)
			waitFor(t, "b to list a", func() bool { return len(b.Peers()) == 1 })
			drop.Store(perMille)
			const n = 2000
			sendNumbered(t, a, 0, n)
			waitFor(t, "every message", func() bool { return b.in.count() >= n })
			got := checkNumbered(t, b.in.all())
			if len(got) != n {
				t.Fatalf("got %d messages, want %d", len(got), n)
			}
			sa, sb := a.Stats(), b.Stats()
			t.Logf("dropped %d datagrams; b: %d repaired, %d out of order, %d NAKs; a: %d repairs resending %d datagrams",
				dropped.Load(), sb.Repaired, sb.OutOfOrder, sb.NAKsSent, sa.RepairsSent, sa.Resent)
			if dropped.Load() == 0 || sb.Repaired == 0 || sb.NAKsSent == 0 || sa.NAKsReceived == 0 || sa.Resent == 0 {
				t.Errorf("no repair happened: a %+v, b %+v", sa, sb)
			}
			if sb.Lost != 0 || b.Peers()[0].Lost != 0 {
				t.Errorf("b skipped %d datagrams", sb.Lost)
			}
			// A repair still on its way may count between two reads:
			// the two counts agree once it has.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				all, peer := b.Stats().Repaired, b.Peers()[0].Repaired
				if all == peer {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("repaired %d in all, %d from its one peer", all, peer)
					break
				}
			}
		})
	}
}

// TestRepairGoneSkipsAtOnce: a sender that keeps no history answers every
// NAK "gone", and the receiver skips, counts and logs the loss, long
// before its gap timeout.
func TestRepairGoneSkipsAtOnce(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfgA := config(port)
	cfgA.HistoryBytes = -1
	a := openLink(t, cfgA)
	cfg := config(port)
	cfg.GapTimeout = time.Hour
	drop, _ := multicast.DropReads(&cfg, 7)
	b := openLink(t, cfg)
	waitFor(t, "b to list a", func() bool { return len(b.Peers()) == 1 })
	blackout(t, a, b, drop, 300, 500, 501)
	checkNumbered(t, b.in.all())
	sa, sb := a.Stats(), b.Stats()
	if sb.Lost == 0 || sa.Unavailable == 0 || sa.Resent != 0 || sb.Gaps != 0 {
		t.Errorf("a: %d unavailable, %d resent; b: %d lost, %d gaps open", sa.Unavailable, sa.Resent, sb.Lost, sb.Gaps)
	}
	logs := b.logs.String()
	if n := strings.Count(logs, "datagrams lost"); n != 1 || !strings.Contains(logs, "the sender no longer holds it") {
		t.Errorf("logged the loss %d times:\n%s", n, logs)
	}
}

// TestRepairBounded: a receiver that hears nothing for a while, then
// everything, faces a gap far larger than the sender's history and its
// own hold bound. Both stay within their bounds, the gap is skipped, and
// newer messages flow again, in order.
func TestRepairBounded(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	const history, hold = 64 << 10, 32 << 10
	cfgA := config(port)
	cfgA.HistoryBytes = history
	cfgA.FlowControl = multicast.FlowNone // b must fall behind
	a := openLink(t, cfgA)
	cfg := config(port)
	cfg.HoldPeer = hold
	cfg.GapTimeout = time.Hour
	drop, _ := multicast.DropReads(&cfg, 3)
	b := openLink(t, cfg)
	waitFor(t, "b to list a", func() bool { return len(b.Peers()) == 1 })
	blackout(t, a, b, drop, 1000, 1000, 2000)
	got := checkNumbered(t, b.in.all())
	sa, sb := a.Stats(), b.Stats()
	t.Logf("b got %d messages, lost %d datagrams, held at most %d bytes; a's history %d bytes", len(got), sb.Lost, sb.HeldPeak, sa.HistoryBytes)
	if sa.HistoryBytes > history || sb.HeldPeak > hold || sb.HeldBytes != 0 {
		t.Errorf("a's history holds %d bytes (bound %d); b held at most %d (bound %d), %d now", sa.HistoryBytes, history, sb.HeldPeak, hold, sb.HeldBytes)
	}
	if sb.Lost == 0 || len(got) < 900 {
		t.Errorf("b lost %d datagrams and got %d messages", sb.Lost, len(got))
	}
}

// TestHistorySurvivesTheLink: a link that replaces another of the same
// node (a reload) shares its history and sequence counters, and answers
// NAKs for what the old link sent; numbers go on without a rewind.
func TestHistorySurvivesTheLink(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	node := multicast.NewNode(cfg.Node, 1<<20)
	old := openNodeLink(t, node, cfg)
	for i := range 3 {
		if err := old.Send(uuid.New(), numbered(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the old link to send", func() bool { return old.Stats().MessagesSent == 3 })
	old.Close()
	sent, _ := node.Seqs()
	next := openNodeLink(t, node, cfg)
	dumpCfg := config(port)
	dumpCfg.Dump = true
	dumper := openLink(t, dumpCfg)
	// Another node asks for everything the old link sent.
	h := multicast.Header{Kind: multicast.KindNAK, Records: 1, Cluster: multicast.ClusterIDOf("test"), Node: uuid.New(), Seq: 1}
	nak := multicast.AppendNAK(multicast.AppendHeader(nil, &h), cfg.Node, []multicast.SeqRange{{First: 1, Last: sent}})
	rawSender(t, port)(nak)
	waitFor(t, "the new link to resend", func() bool { return next.Stats().Resent == sent })
	if s := next.Stats(); s.NAKsReceived != 1 || s.Unavailable != 0 || s.RepairsSent == 0 {
		t.Errorf("the new link: %+v", s)
	}
	// dumpnet shows NAKs and repairs readably.
	waitFor(t, "the dump of the repair", func() bool {
		return strings.Contains(dumper.logs.String(), "kind=repair") && strings.Contains(dumper.logs.String(), "datagram 1, ")
	})
	if want := fmt.Sprintf("nak to %v for [{1 %d}]", cfg.Node, sent); !strings.Contains(dumper.logs.String(), want) {
		t.Errorf("the dump lacks %q", want)
	}
	// The new link's first message goes on from the old one's numbers.
	before := next.Stats().MessagesSent
	if err := next.Send(uuid.New(), numbered(3, 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new link to send", func() bool { return next.Stats().MessagesSent > before })
	if s0, s1 := node.Seqs(); s1 == 0 || s0 <= sent {
		t.Errorf("counters: stream 0 at %d (the old link stopped at %d), stream 1 at %d", s0, sent, s1)
	}
}

// TestHeldLinkNumbersAfterTheOld: a link opened held in place of
// another (a reload) numbers nothing of the node's stream 0 until
// Release, not even its first heartbeat, so every number it gives
// follows all those of the link it replaces. The node's history keeps
// datagrams in increasing numbers only: when the new link's first
// heartbeat went out while the old link still wrote, the old link's
// datagrams numbered before it and written after it were not kept, and
// a NAK for any of them was answered "gone".
func TestHeldLinkNumbersAfterTheOld(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	cfg.Heartbeat = time.Hour // the old link's one heartbeat is its first
	node := multicast.NewNode(cfg.Node, 4<<20)
	old := openNodeLink(t, node, cfg)
	waitFor(t, "the old link's first heartbeat", func() bool { s0, _ := node.Seqs(); return s0 == 1 })
	held := config(port)
	held.Node, held.Held = cfg.Node, true
	next := openNodeLink(t, node, held)
	// Its heartbeats fall due every 50 ms, and are left queued.
	time.Sleep(300 * time.Millisecond)
	if s0, _ := node.Seqs(); s0 != 1 {
		t.Fatalf("the held link numbered %d datagrams of stream 0", s0-1)
	}
	const n = 1000
	sendNumbered(t, old, 0, n)
	waitFor(t, "the old link to send", func() bool { return old.Stats().MessagesSent == n })
	old.Close()
	last, _ := node.Seqs()
	next.Release()
	waitFor(t, "the released link's heartbeat", func() bool { s0, _ := node.Seqs(); return s0 > last })
	// Every datagram of the node's stream is in its history.
	h := multicast.Header{Kind: multicast.KindNAK, Records: 1, Cluster: multicast.ClusterIDOf("test"), Node: uuid.New(), Seq: 1}
	rawSender(t, port)(multicast.AppendNAK(multicast.AppendHeader(nil, &h), cfg.Node, []multicast.SeqRange{{First: 1, Last: last + 1}}))
	waitFor(t, "the answer to the NAK", func() bool { s := next.Stats(); return s.Resent+s.Unavailable >= last+1 })
	if s := next.Stats(); s.Resent != last+1 || s.Unavailable != 0 {
		t.Errorf("of datagrams 1 to %d, the released link resent %d and said %d gone", last+1, s.Resent, s.Unavailable)
	}
}

// TestHeldLinkClosedSendsNothing: a link opened held and closed without
// Release (a reload that failed after opening it) never took over, and
// sends nothing of stream 0, not even the leaving heartbeat of Leave:
// the link it would have replaced goes on alone.
func TestHeldLinkClosedSendsNothing(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	cfg.Heartbeat = time.Hour
	node := multicast.NewNode(cfg.Node, 4<<20)
	openNodeLink(t, node, cfg)
	waitFor(t, "the old link's first heartbeat", func() bool { s0, _ := node.Seqs(); return s0 == 1 })
	for _, end := range []func(*multicast.Link) error{(*multicast.Link).Close, (*multicast.Link).Leave} {
		held := config(port)
		held.Node, held.Held = cfg.Node, true
		next := openNodeLink(t, node, held)
		time.Sleep(100 * time.Millisecond) // its first heartbeats fall due
		end(next.Link)
		if s0, _ := node.Seqs(); s0 != 1 {
			t.Fatalf("a held link that closed numbered %d datagrams of stream 0", s0-1)
		}
	}
}

// blackout has b's socket drop perMille of the datagrams while a sends
// messages 0 to n-1, then nothing while a sends n to end-1, and waits
// until b has message end-1.
func blackout(t *testing.T, a, b *testLink, drop *atomic.Uint64, perMille uint64, n, end int) {
	t.Helper()
	drop.Store(perMille)
	sendNumbered(t, a, 0, n)
	waitFor(t, "a to send them", func() bool { return a.Stats().MessagesSent == uint64(n) })
	time.Sleep(50 * time.Millisecond) // for b to read them
	drop.Store(0)
	sendNumbered(t, a, n, end)
	waitFor(t, "the last message", func() bool {
		all := b.in.all()
		return len(all) > 0 && binary.BigEndian.Uint32(all[len(all)-1]) == uint32(end-1)
	})
}

// TestGapOutlivesItsLink: a gap that one link of a node saw is still
// waited for, then skipped, by the link a reload opens in its place.
// The links share the node's orderer but each runs its own repair
// timer, armed when it sees a new gap: a gap the closed link saw held
// what followed it for good (and, through flow control, its sender).
func TestGapOutlivesItsLink(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	// From the old link seeing the gap until the sender goes on through
	// the next link, the old link closes and the next opens: within
	// both timeouts, or the old link skips the gap itself (by its timer,
	// or the sender's silence) and delivers what follows to nobody the
	// test hears. Seconds, for a loaded machine.
	cfg.GapTimeout, cfg.PeerTimeout = 3*time.Second, 3*time.Second
	node := multicast.NewNode(cfg.Node, 0)
	old := openNodeLink(t, node, cfg)
	// A sender that never answers NAKs: the gap can end only by its
	// timeout.
	send, from := rawSender(t, port), uuid.New()
	msg := func(seq uint64) []byte {
		m := numbered(int(seq), 10)
		return datagram(from, seq, multicast.Record{ID: uuid.New(), Count: 1, Total: len(m), Payload: m})
	}
	send(msg(1))
	waitFor(t, "the old link to deliver message 1", func() bool { return old.in.count() == 1 })
	send(msg(3))
	waitFor(t, "the old link to see the gap", func() bool { return old.Stats().Gaps == 1 })
	old.Close()
	next := openNodeLink(t, node, cfg)
	if g := next.Stats().Gaps; g != 1 {
		t.Fatalf("the new link sees %d gaps, want the old link's one", g)
	}
	// The sender goes on, so that its window stays alive: a peer that
	// falls silent has its gaps skipped whatever the timer.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for seq := uint64(4); ; seq++ {
			send(msg(seq))
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	waitFor(t, "the new link to skip the gap and deliver 3 and 4", func() bool { return next.in.count() >= 2 })
	close(stop)
	<-done
	if got := checkNumbered(t, next.in.all()); got[0] != 3 || got[1] != 4 {
		t.Errorf("the new link delivered %v first, want 3 and 4", got)
	}
	if s := next.Stats(); s.Lost != 1 {
		t.Errorf("lost %d, want 1", s.Lost)
	}
}

// TestUnsentKeptForTheNextLink: a link that closes before it has
// written what it numbered (its writes outlast the half second Close
// gives them) keeps those datagrams in the node's history, so that the
// link a reload opens in its place answers the NAKs for them: the
// receivers repair them instead of skipping them as gone.
func TestUnsentKeptForTheNextLink(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	node := multicast.NewNode(cfg.Node, 4<<20)
	slow := cfg
	slow.SendQueue = 4 << 20
	multicast.SlowWrites(&slow, 20*time.Millisecond) // a datagram a write
	old := openNodeLink(t, node, slow)
	// One datagram a message, more than a write batch holds: Close
	// numbers them all, and writes about 25 in its half second.
	for i := range 1000 {
		if err := old.Send(uuid.New(), numbered(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s := old.Stats()
	if s.Unsent == 0 {
		t.Fatalf("nothing was left unsent: %+v", s)
	}
	// Told as well as counted.
	if want := fmt.Sprintf("messages left unsent\" messages=%d", s.Unsent); !strings.Contains(old.logs.String(), want) {
		t.Errorf("the log lacks %q:\n%s", want, old.logs)
	}
	last, _ := node.Seqs() // the last number given
	next := openNodeLink(t, node, cfg)
	h := multicast.Header{Kind: multicast.KindNAK, Records: 1, Cluster: multicast.ClusterIDOf("test"), Node: uuid.New(), Seq: 1}
	rawSender(t, port)(multicast.AppendNAK(multicast.AppendHeader(nil, &h), cfg.Node, []multicast.SeqRange{{First: last, Last: last}}))
	waitFor(t, "the answer to the NAK", func() bool { s := next.Stats(); return s.Resent+s.Unavailable > 0 })
	if s := next.Stats(); s.Resent != 1 || s.Unavailable != 0 {
		t.Errorf("the next link resent %d and said %d gone of the last datagram the old one numbered; want 1 and 0", s.Resent, s.Unavailable)
	}
}
