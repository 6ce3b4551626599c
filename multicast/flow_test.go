package multicast_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
)

// sendAll sends messages 0..n-1 of size bytes from l on a goroutine of
// its own, since Send waits while flow control holds the link back; the
// function returned waits for it and reports Send's first error.
func sendAll(t *testing.T, l *testLink, n, size int) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	var err error
	wg.Go(func() {
		for i := range n {
			if err = l.Send(uuid.New(), numbered(i, size)); err != nil {
				return
			}
		}
	})
	return func() {
		t.Helper()
		wg.Wait()
		if err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

// hasAll reports whether in holds messages 0..n-1, the last one being
// n-1.
func hasAll(in *inbox, n int) bool {
	all := in.all()
	return len(all) == n && binary.BigEndian.Uint32(all[n-1]) == uint32(n-1)
}

// TestFlowControlWaitsForAStoppedReceiver: a receiver stopped for a
// moment (shorter than peertimeout) holds the sender back to its window
// instead of losing what its socket cannot hold; once it resumes, both
// receivers have every message, in order, and none of a's datagrams was
// lost or dropped.
func TestFlowControlWaitsForAStoppedReceiver(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	slow := func(cfg multicast.Config) multicast.Config { cfg.PeerTimeout = 5 * time.Second; return cfg }
	a := openLink(t, slow(config(port)))
	cfgB := slow(config(port))
	freeze, thaw := multicast.Freeze(&cfgB)
	b := openLink(t, cfgB)
	t.Cleanup(thaw)
	c := openLink(t, slow(config(port)))
	waitFor(t, "a to hear from both receivers", func() bool { return a.Stats().FlowReceivers == 2 })
	n := 6 * b.Stats().Window // far more datagrams than b's window
	freeze()
	wait := sendAll(t, a, n, 1000)
	waitFor(t, "a to be held back", func() bool { return a.Stats().FlowHeld > 0 })
	time.Sleep(time.Second) // b stays stopped a while
	held := a.Stats().MessagesSent
	thaw()
	wait()
	lostOfA := func(l *testLink) uint64 { return peerOf(l.Peers(), a.cfg.Node).Lost }
	waitFor(t, "b and c to have every message, or to skip some", func() bool {
		return hasAll(b.in, n) && hasAll(c.in, n) || lostOfA(b) != 0 || lostOfA(c) != 0
	})
	checkNumbered(t, b.in.all())
	checkNumbered(t, c.in.all())
	if !hasAll(b.in, n) || !hasAll(c.in, n) {
		t.Errorf("b has %d messages and c %d, of %d", b.in.count(), c.in.count(), n)
	}
	aAtB, aAtC := peerOf(b.Peers(), a.cfg.Node), peerOf(c.Peers(), a.cfg.Node)
	sa, sb, sc := a.Stats(), b.Stats(), c.Stats() // after: the totals are no smaller
	t.Logf("n %d, window %d, sent %d while b was stopped; held %d times, %d ms", n, sb.Window, held, sa.FlowHeld, sa.FlowHeldMs)
	if aAtB.Node != a.cfg.Node || aAtC.Node != a.cfg.Node {
		t.Fatalf("b or c does not list a as a peer: %v, %v", aAtB.Node, aAtC.Node)
	}
	if held >= uint64(n) {
		t.Errorf("a sent all %d messages while b was stopped", n)
	}
	// What flow control keeps from being lost is a's stream. b's own
	// stream has a gap: a frozen link numbers the heartbeats it writes,
	// and they never leave. a and c repair them from b's history once
	// b resumes, or, when a busy machine keeps the repair from coming
	// within the gap timeout, skip them and count them as lost.
	lostB, lostC := aAtB.Lost, aAtC.Lost
	if lostB != 0 || lostC != 0 || sa.QueueFull != 0 || sa.FlowExcluded != 0 {
		t.Errorf("of a's stream, b lost %d and c lost %d; a refused %d and left out %d receivers", lostB, lostC, sa.QueueFull, sa.FlowExcluded)
	}
	if sb.Lost != lostB || sc.Lost != lostC {
		t.Logf("of other streams, b lost %d and c lost %d", sb.Lost-lostB, sc.Lost-lostC)
	}
	if p := peerOf(a.Peers(), cfgB.Node); p.Flow.HeldBack == 0 || !p.Flow.Live || p.Flow.Window == 0 {
		t.Errorf("a's view of b: %+v", p.Flow)
	}
}

func peerOf(peers []multicast.Peer, node uuid.UUID) multicast.Peer {
	for _, p := range peers {
		if p.Node == node {
			return p
		}
	}
	return multicast.Peer{}
}

// TestFlowControlLeavesOutASilentReceiver: a receiver stopped for longer
// than peertimeout leaves the calculation, counted and logged, and the
// other receiver gets everything; once it resumes, it joins again and
// hears what is sent from then on.
func TestFlowControlLeavesOutASilentReceiver(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	// A peertimeout long enough that a busy machine does not stall c
	// for as long, and short enough for the test.
	cfg := func() multicast.Config { c := config(port); c.PeerTimeout = time.Second; return c }
	a := openLink(t, cfg())
	cfgB := cfg()
	freeze, thaw := multicast.Freeze(&cfgB)
	b := openLink(t, cfgB)
	t.Cleanup(thaw)
	c := openLink(t, cfg())
	waitFor(t, "a to hear from both receivers", func() bool { return a.Stats().FlowReceivers == 2 })
	n := 3 * b.Stats().Window
	freeze()
	wait := sendAll(t, a, n, 1000)
	waitFor(t, "c to have every message", func() bool { return hasAll(c.in, n) })
	wait()
	// The count and the log line come just after the sender stops
	// waiting for b, which may be after c has everything.
	waitFor(t, "a to log that b left flow control", func() bool {
		return strings.Contains(a.logs.String(), "left flow control")
	})
	sa := a.Stats()
	if sa.FlowExcluded != 1 || sa.QueueFull != 0 || c.Stats().Lost != 0 {
		t.Errorf("a left out %d receivers and refused %d messages; c lost %d", sa.FlowExcluded, sa.QueueFull, c.Stats().Lost)
	}
	thaw()
	waitFor(t, "b to join flow control again", func() bool {
		return strings.Count(a.logs.String(), `receiver joined flow control" peer=`+cfgB.Node.String()) == 2
	})
	if err := a.Send(uuid.New(), numbered(n, 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to hear the message sent after it resumed", func() bool {
		all := b.in.all()
		return len(all) > 0 && binary.BigEndian.Uint32(all[len(all)-1]) == uint32(n)
	})
	checkNumbered(t, b.in.all())
}

// TestHistoryFreedByReports: what every live receiver has reported
// leaves the sender's history; with no receiver, the history keeps what
// its bound allows.
func TestHistoryFreedByReports(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	sendNumbered(t, a, 0, 20)
	waitFor(t, "a to send", func() bool { return a.Stats().MessagesSent == 20 })
	if s := a.Stats(); s.HistoryReleased != 0 || s.HistoryCount < 5 {
		t.Errorf("alone, a freed %d datagrams and holds %d", s.HistoryReleased, s.HistoryCount)
	}
	b := openLink(t, config(port))
	dumpCfg := config(port)
	dumpCfg.Dump = true
	dumper := openLink(t, dumpCfg)
	waitFor(t, "a to hear from b and the dumper", func() bool { return a.Stats().FlowReceivers == 2 })
	sendNumbered(t, a, 20, 40)
	waitFor(t, "b to have them", func() bool { return len(b.in.all()) == 20 })
	waitFor(t, "a to free what b reported", func() bool {
		s := a.Stats()
		return s.HistoryReleased > 5 && s.HistoryCount < 5
	})
	// dumpnet shows statuses with their entries.
	want := fmt.Sprintf("kind=status node=%v", b.cfg.Node)
	waitFor(t, "the dump of b's status", func() bool {
		return strings.Contains(dumper.logs.String(), want) && strings.Contains(dumper.logs.String(), fmt.Sprintf("%v at ", a.cfg.Node))
	})
}

// TestNodeReceivesOnceAcrossLinks: a receiving node swaps its link for
// another while a sender sends, as a reload does: the new link runs
// beside the old one, then the old one closes. Every message is
// delivered once, in order, by one link or the other, and none is lost.
func TestNodeReceivesOnceAcrossLinks(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	cfg := config(port)
	node := multicast.NewNode(cfg.Node, 1<<20)
	r1 := openNodeLink(t, node, cfg)
	waitFor(t, "a to hear from the receiver", func() bool { return a.Stats().FlowReceivers == 1 })
	const n = 3000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := a.Send(uuid.New(), numbered(i, 200)); err != nil {
				t.Errorf("send: %v", err)
				return
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	waitFor(t, "the first messages", func() bool { return r1.in.count() >= n/4 })
	r2 := openNodeLink(t, node, cfg)
	waitFor(t, "the second link to deliver", func() bool { return r2.in.count() > 0 })
	r1.Close()
	wg.Wait()
	waitFor(t, "every message", func() bool { return r1.in.count()+r2.in.count() == n })
	got := checkNumbered(t, append(r1.in.all(), r2.in.all()...))
	if len(got) != n || got[0] != 0 {
		t.Errorf("got %d messages from %d", len(got), got[0])
	}
	if s := r2.Stats(); s.Lost != 0 {
		t.Errorf("lost %d datagrams across the swap", s.Lost)
	}
	if len(r2.Peers()) != 1 {
		t.Errorf("the new link lists %d peers, want the old link's one", len(r2.Peers()))
	}
}

// TestFlowControlReceiverLeaves: a receiver whose link leaves the
// cluster (Leave: it shuts down) says so in its last heartbeat. The
// sender forgets it at once, as a peer and as a receiver, rather than
// after peertimeout (a minute here), so nothing waits for it: a burst
// of many of its windows goes out at once to the receiver that stays.
// It is not counted as left out (flow_excluded).
func TestFlowControlReceiverLeaves(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := func() multicast.Config { c := config(port); c.PeerTimeout = time.Minute; return c }
	a := openLink(t, cfg())
	b := openLink(t, cfg())
	c := openLink(t, cfg())
	waitFor(t, "a to hear from both receivers", func() bool { return a.Stats().FlowReceivers == 2 })
	waitFor(t, "a to list both peers", func() bool { return len(a.Peers()) == 2 })
	n := 6 * b.Stats().Window

	if err := b.Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to forget b as a receiver", func() bool { return a.Stats().FlowReceivers == 1 })
	if p := peerOf(a.Peers(), b.cfg.Node); p.Node == b.cfg.Node {
		t.Errorf("a still lists b as a peer: %+v", p)
	}
	wait := sendAll(t, a, n, 1000)
	waitFor(t, "c to have every message", func() bool { return hasAll(c.in, n) })
	wait()
	checkNumbered(t, c.in.all())
	sa := a.Stats()
	if sa.FlowExcluded != 0 || sa.QueueFull != 0 || c.Stats().Lost != 0 {
		t.Errorf("a left out %d receivers and refused %d messages; c lost %d", sa.FlowExcluded, sa.QueueFull, c.Stats().Lost)
	}
	for _, line := range []string{
		`"peer left the cluster" peer=` + b.cfg.Node.String(),
		`"receiver left flow control: it left the cluster" peer=` + b.cfg.Node.String(),
	} {
		if !strings.Contains(a.logs.String(), line) {
			t.Errorf("a's log lacks %s", line)
		}
	}
	if strings.Contains(c.logs.String(), "peer gone") || strings.Contains(a.logs.String(), "peer gone") {
		t.Error("a peer that left was taken as gone silent")
	}
}

// TestSwapKeepsToTheWindow: a reload swaps the sender's link while a
// receiver is stopped and flow control holds the sender back. The link
// that closes (CloseInto) still waits for the receiver's window: the
// node numbers nothing past it but a write batch, and its history,
// bounded here to little more than the window, still holds everything
// the receiver has not had. Before, the closing link wrote what it had
// queued at once, past the window: swap after swap, the history
// dropped datagrams the receiver had not had, and answered its NAKs
// for them "gone".
func TestSwapKeepsToTheWindow(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	slow := func(c multicast.Config) multicast.Config { c.PeerTimeout = 20 * time.Second; return c }
	cfgB := slow(config(port))
	freeze, thaw := multicast.Freeze(&cfgB)
	b := openLink(t, cfgB)
	t.Cleanup(thaw)
	window := b.Stats().Window
	const size = 1000 // one message a datagram
	cfg := slow(config(port))
	// Room for the window and a write batch (64 datagrams), and little
	// more.
	node := multicast.NewNode(cfg.Node, (window+128)*(size+100))
	var cur atomic.Pointer[testLink]
	cur.Store(openNodeLink(t, node, cfg))
	waitFor(t, "a to list b as a receiver", func() bool { return peerOf(cur.Load().Peers(), cfgB.Node).Flow.Live })
	n := 3 * window
	freeze()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			// As the router does: a message the closing link refuses
			// goes to the link that takes over.
			l := cur.Load()
			err := l.Send(uuid.New(), numbered(i, size))
			for errors.Is(err, multicast.ErrClosed) && cur.Load() != l {
				l = cur.Load()
				err = l.Send(uuid.New(), numbered(i, size))
			}
			if err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	})
	waitFor(t, "a to be held back", func() bool { return cur.Load().Stats().FlowHeld > 0 })
	held := cfg
	held.Held = true
	next := openNodeLink(t, node, held)
	old := cur.Swap(next)
	time.Sleep(100 * time.Millisecond) // the old link's queue fills up
	closed := make(chan struct{})
	go func() {
		old.CloseInto(next.Link)
		next.Release()
		close(closed)
	}()
	time.Sleep(300 * time.Millisecond)
	s0, _ := node.Seqs()
	fb := peerOf(next.Peers(), cfgB.Node).Flow
	if limit := fb.Position + uint64(fb.Window); s0 > limit+64 {
		t.Errorf("the swap numbered stream 0 up to %d, %d past b's window (position %d, window %d)", s0, s0-limit, fb.Position, fb.Window)
	}
	// Another node asks for all that b has not had.
	h := multicast.Header{Kind: multicast.KindNAK, Records: 1, Cluster: multicast.ClusterIDOf("test"), Node: uuid.New(), Seq: 1}
	rawSender(t, port)(multicast.AppendNAK(multicast.AppendHeader(nil, &h), cfg.Node, []multicast.SeqRange{{First: fb.Position + 1, Last: s0}}))
	waitFor(t, "the answer to the NAK", func() bool { s := next.Stats(); return s.Resent+s.Unavailable > 0 })
	time.Sleep(50 * time.Millisecond) // both links read the NAK
	if s := next.Stats(); s.Unavailable != 0 {
		t.Errorf("of datagrams %d to %d, which b has not had, the history no longer holds %d", fb.Position+1, s0, s.Unavailable)
	}
	thaw()
	<-closed
	wg.Wait()
	waitFor(t, "b to have every message", func() bool { return hasAll(b.in, n) })
	checkNumbered(t, b.in.all())
	if sa, sb := next.Stats(), b.Stats(); sb.Lost != 0 || sa.Unsent != 0 || sa.QueueFull != 0 {
		t.Errorf("b lost %d datagrams; a left %d messages unsent and refused %d", sb.Lost, sa.Unsent, sa.QueueFull)
	}
}
