package router_test

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/natslink"
	"github.com/netcluster/netcluster/router/routertest"
	"github.com/vmihailenco/msgpack/v5"
)

// TestNATSPacks: with nats.pack, a server sends the events of a channel
// in packs, several to a NATS message, which a plain nats.go program can
// read as documented; a server that does not pack reads them all the
// same, in order, and the packing server reads single events.
func TestNATSPacks(t *testing.T) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	packing := natsNode(t, url, `"pack": true`)
	single := natsNode(t, url)
	waitNATS(t, packing, single)
	nc := plainNATS(t, url)
	sub, err := nc.SubscribeSync("netcluster.default.A")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	peer := func() (p natslink.Peer) {
		for _, p := range single.NATSPeers() {
			if p.Node == packing.Node() {
				return p
			}
		}
		return p
	}
	routertest.WaitFor(t, "the packing server among the peers", func() bool { return peer().Node == packing.Node() })
	r := routertest.Record(t, single.Dial(t, "A"), ".*")
	pub := packing.Dial(t, "A")
	probe(t, pub, r)
	const n = 3000
	burst(t, pub, n)
	r.WaitCount(t, "n", n)
	checkSeq(t, "a server that does not pack, from one that does", dataOf(t, r, "n"), n)
	if p := peer(); p.Msgs < n || p.Bytes < n {
		t.Errorf("the peer shows %d events, %d bytes; want each event of the packs counted, at least %d", p.Msgs, p.Bytes, n)
	}

	// The plain program: every message is a pack of frames.
	var got []int
	msgs, firstSeq := 0, 0
	for len(got) < n {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(got), n, err)
		}
		msgs++
		count, err := strconv.Atoi(m.Header.Get(natslink.HeaderPack))
		if err != nil || len(m.Header) != 2 {
			t.Fatalf("a message with headers %v: want %s, a number, and %s alone", m.Header, natslink.HeaderPack, natslink.HeaderSeq)
		}
		// The packs number their events on from one another (the
		// probes came before the first).
		seq := m.Header.Get(natslink.HeaderSeq)
		_, num, _ := strings.Cut(seq, ".")
		first, err := strconv.Atoi(num)
		if err != nil || len(got) == 0 && first < 1 || len(got) > 0 && first != firstSeq+len(got) {
			t.Fatalf("a pack after %d events is numbered %q; the first was %d", len(got), seq, firstSeq)
		}
		if len(got) == 0 {
			firstSeq = first
		}
		frames := 0
		for body := m.Data; len(body) > 0; frames++ {
			size := int(binary.BigEndian.Uint32(body))
			ev, err := wire.DecodeEvent(body[4 : 4+size])
			if err != nil {
				t.Fatalf("frame %d of a pack: %v", frames, err)
			}
			body = body[4+size:]
			if ev.Channel != "A" || ev.Origin != packing.Node() || ev.Sender != pub.ID() {
				t.Fatalf("an event of channel %q, origin %v, sender %v", ev.Channel, ev.Origin, ev.Sender)
			}
			if ev.Event == "n" {
				var v int
				if err := msgpack.Unmarshal(ev.Data, &v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
		}
		if frames != count {
			t.Errorf("a pack says %d events and holds %d", count, frames)
		}
	}
	checkSeq(t, "read by a plain NATS program", got, n)
	if msgs >= n {
		t.Errorf("%d events came in %d messages: no pack held more than one", n, msgs)
	}
	t.Logf("%d events in %d packs", n, msgs)
	if st := natsStats(t, packing); st.EventsOut < n || st.Dropped != 0 {
		t.Errorf("the packing server counts %d events out, %d dropped", st.EventsOut, st.Dropped)
	}

	// The other way: single events into the packing server.
	back := routertest.Record(t, packing.Dial(t, "A"), "back")
	pub2 := single.Dial(t, "A")
	for i := range 10 {
		if err := pub2.Emit("back", i); err != nil {
			t.Fatal(err)
		}
	}
	back.WaitCount(t, "back", 10)
	checkSeq(t, "a packing server, from one that does not pack", dataOf(t, back, "back"), 10)
}

// TestNATSBadPacks: a pack that is not frames of events of its subject's
// channel, addressed to nobody, with ids and senders that are not the
// zero uuid, is dropped from its first bad frame on
// and counted (the events before it are delivered); a frame of the
// server's own is skipped; the server goes on.
func TestNATSBadPacks(t *testing.T) {
	ns := startNATS(t, 0)
	ts := routertest.NewServer(t, `"maxframe": 4096, `+natsMembers(ns.ClientURL(), "", bridged))
	nc := plainNATS(t, ns.ClientURL())
	r := routertest.Record(t, ts.Dial(t, "A"), ".*")
	waitNATS(t, ts)

	frame := func(channel, event string, mod func(*wire.Message)) []byte {
		data, _ := msgpack.Marshal(event)
		m := wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: channel, Event: event, Data: data}
		if mod != nil {
			mod(&m)
		}
		return wire.AppendEvent(nil, &m)
	}
	send := func(subject string, frames ...[]byte) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Header.Set(natslink.HeaderPack, strconv.Itoa(len(frames)))
		for _, f := range frames {
			m.Data = append(m.Data, f...)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	const subj = "netcluster.default.A"
	good := frame("A", "good", nil)
	send(subj, frame("A", "before", nil), frame("B", "other channel", nil), frame("A", "after", nil))
	send(subj, frame("A", "addressed", func(m *wire.Message) { m.To, m.InReplyTo = uuid.New(), uuid.New() }))
	send(subj, good[:len(good)-1])                              // cut short
	send(subj, append([]byte{0xff, 0xff, 0xff, 0xff}, good...)) // a length past the end
	send(subj, []byte{0, 0, 0, 2, 0x92, 0xc0})                  // not an event frame
	send("netcluster.$node.default."+ts.Node().String(), frame("A", "on the node subject", nil))
	send(subj, frame("A", "own", func(m *wire.Message) { m.Origin = ts.Node() }), frame("A", "theirs", nil))
	send(subj, frame("A", "big", func(m *wire.Message) { m.Data, _ = msgpack.Marshal(strings.Repeat("x", 5000)) }))
	send(subj, frame("A", "zero id", func(m *wire.Message) { m.ID = uuid.Nil }))
	send(subj, frame("A", "zero sender", func(m *wire.Message) { m.Sender = uuid.Nil }))
	send(subj, frame("A", "end", nil))
	r.WaitCount(t, "end", 1)
	routertest.WaitFor(t, "the node subject's pack", func() bool { return natsStats(t, ts).Malformed >= 8 })

	if evs := strings.Join(r.Events(), " "); evs != "before theirs end" {
		t.Errorf("delivered %q; want before theirs end", evs)
	}
	st := natsStats(t, ts)
	if st.Malformed != 8 || st.Invalid != 1 {
		t.Errorf("malformed %d, invalid %d; want 8 (seven packs and the node subject's) and 1 (past maxframe)", st.Malformed, st.Invalid)
	}
}

// plainNATS is a plain nats.go connection to url, closed when the test
// ends.
func plainNATS(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestNATSFewOfEachPack: a client across a packing bridge that listens to
// one event in 100, and takes nothing until the stream has come, gets
// each of those events intact and in order. Its queue holds them as
// copies, not as slices of the packs (channel.TestSparseSlabMemory), so
// this is the path where a copy gone wrong, or a buffer given back too
// soon, would show.
func TestNATSFewOfEachPack(t *testing.T) {
	const n, every = 30_000, 100
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	s1 := natsNode(t, url, `"pack": true`)
	s2 := natsNode(t, url)
	waitNATS(t, s1, s2)
	var sub counter
	cl := sub.dial(t, s2, "A", bus.QueueLen(16))
	probeRec := routertest.Record(t, cl, "probe")
	gate, open := closedGate(t)
	var got []int
	var mu sync.Mutex
	// A rare event is large, so that what the listener has not taken
	// fills the socket and waits in the server's queue for the packs
	// after its own.
	type rare struct {
		N   int
		Pad []byte
	}
	if _, err := cl.On("rare", func(m bus.Message) {
		<-gate
		var v rare
		if err := m.Decode(&v); err != nil || len(v.Pad) != 4096 || v.Pad[4095] != byte(v.N) {
			t.Errorf("event %d: %d bytes of padding, err %v", len(got), len(v.Pad), err)
		}
		mu.Lock()
		got = append(got, v.N)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	pub := s1.Dial(t, "A")
	probe(t, pub, probeRec)
	common := make([]byte, 128)
	done := emitting(n, func(i int) error {
		if i%every == every-1 {
			pad := make([]byte, 4096)
			pad[4095] = byte(i / every)
			return pub.Emit("rare", rare{N: i / every, Pad: pad})
		}
		return pub.Emit("common", common)
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the server to take every event", func() bool { return natsStats(t, s2).EventsIn >= n })
	open()
	routertest.WaitFor(t, "every rare event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n/every
	})
	mu.Lock()
	checkSeq(t, "the listener of one event in 100", got, n/every)
	mu.Unlock()
	if d := sub.disconnects.Load(); d != 0 {
		t.Errorf("the listener was disconnected %d times", d)
	}
	if st := natsStats(t, s1); st.MsgsOut >= n/2 {
		t.Errorf("%d NATS messages for %d events: the test needs packs", st.MsgsOut, n)
	}
}
