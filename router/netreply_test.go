package router_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNetRequestReply: over multicast, a request answered on another
// server gets its reply; every server hears the reply, and only the
// asker's delivers it, to the asker alone.
func TestNetRequestReply(t *testing.T) {
	port := mcasttest.Port()
	const chans = `"channels": {"A": {"propagatetonet": true}}`
	s1, s2, s3 := netServer(t, port, "replies", chans), netServer(t, port, "replies", chans), netServer(t, port, "replies", chans)
	waitPeers(t, s1, s2, s3)
	askAcross(t, []*routertest.Server{s1, s2, s3}, 5)
	if u := s2.Channels()[0].Stats.Undeliverable; u != 0 {
		t.Errorf("the responder's server counted %d replies undeliverable", u)
	}
}

// askAcross has an asker on servers[0] make n requests that a responder
// on servers[1] answers, with a bystander listening to everything on
// each server. It checks every reply, and that no bystander heard one,
// and returns the bystanders, fenced, for more checks.
func askAcross(t *testing.T, servers []*routertest.Server, n int) []*routertest.Recorder {
	t.Helper()
	responder(t, servers[1].Dial(t, "A", bus.Name("responder")))
	asker := servers[0].Dial(t, "A", bus.Name("asker"))
	var bystanders []*routertest.Recorder
	for _, ts := range servers {
		bystanders = append(bystanders, routertest.Record(t, ts.Dial(t, "A", bus.Name("bystander")), ".*"))
	}
	for i := range n {
		m := request(t, asker, fmt.Sprint(i))
		var got string
		if err := m.Decode(&got); err != nil || got != fmt.Sprint("got ", i) || m.To != asker.ID() {
			t.Errorf("reply %+v: %q, %v", m, got, err)
		}
	}
	for i, r := range bystanders {
		routertest.Fence(t, servers[i], "A", r)
		if c := r.Count("get-response"); c != 0 {
			t.Errorf("a bystander on server %d heard %d replies", i+1, c)
		}
	}
	return bystanders
}

// TestNetReplyUnderLoad: over multicast, a reply reaches its asker
// however many events the servers exchanged between the request and
// the reply: here tens of thousands, more than the ids the servers
// remember.
func TestNetReplyUnderLoad(t *testing.T) {
	port := mcasttest.Port()
	const chans = `"channels": {"A": {"propagatetonet": true}}`
	s1, s2 := netServer(t, port, "replies", chans), netServer(t, port, "replies", chans)
	waitPeers(t, s1, s2)
	replyUnderLoad(t, s1, s2, func() uint64 { return s2.NetStats().Delivered })
}

// replyUnderLoad has an asker on ask make a request that a responder on
// answer replies to only once a client on ask has sent 40,000 more
// events to answer (delivered counts them there), and checks the reply.
func replyUnderLoad(t *testing.T, ask, answer *routertest.Server, delivered func() uint64) {
	t.Helper()
	const between = 40000
	rc := answer.Dial(t, "A", bus.Name("slow responder"))
	asked := make(chan bus.Message, 1)
	if _, err := rc.On("get", func(m bus.Message) { asked <- m }); err != nil {
		t.Fatal(err)
	}
	asker := ask.Dial(t, "A", bus.Name("asker"))
	probe(t, asker, routertest.Record(t, answer.Dial(t, "A"), "probe"))
	stream := streamSeq(ask.Dial(t, "A", bus.Name("load")))
	defer stream.end(t)
	replied := make(chan error, 1)
	go func() {
		select {
		case m := <-asked:
			at := delivered()
			for delivered() < at+between {
				time.Sleep(time.Millisecond)
			}
			replied <- rc.Reply(m, "late")
		case <-time.After(30 * time.Second):
			replied <- fmt.Errorf("the request never came")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := asker.Request(ctx, "get", "x")
	if rerr := <-replied; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("request: %v (the responder's server counted %d undeliverable)", err, answer.Channels()[0].Stats.Undeliverable)
	}
	var got string
	if err := m.Decode(&got); err != nil || got != "late" || m.To != asker.ID() {
		t.Errorf("reply %+v: %q, %v", m, got, err)
	}
}

// TestNetReplyFloodHoldsBack: over multicast, a flood of replies to an
// asker that reads slowly holds the link back, as a flood of events
// from the network does, instead of filling the asker's queue to
// maxpending: every reply arrives, in order, and the asker is never
// dropped.
//
// The asker's maxpending, 256 KiB, leaves room above its mark for what
// the link brings once a hold reaches its bound; at 64 KiB the asker
// was dropped now and then under the race detector. The servers'
// peertimeout is 2 s, not netMembers' 300 ms: while the asker's server
// delivers a batch of datagrams, holding back for the asker at each
// pass of its mark, its link's statuses wait, and under the race
// detector on a loaded machine that once lasted 495 ms. The replier's
// server then left it out of flow control, and dropped a reply that
// waited for the link longer than peertimeout.
func TestNetReplyFloodHoldsBack(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	patient := func(members string) *routertest.Server {
		t.Helper()
		return routertest.NewServer(t, patientMembers(port, "replies", "2s", members))
	}
	s1 := patient(`"maxframe": 16384, "maxpending": 262144, "channels": {"A": {"propagatetonet": true}}`)
	s2 := patient(`"channels": {"A": {"propagatetonet": true}}`)
	waitPeers(t, s1, s2)
	replyFlood(t, s1, s2, 5000)
	if st := s2.NetStats(); st.SendFailed != 0 {
		t.Errorf("the responder's server failed to send %d replies", st.SendFailed)
	}
}

// replyFlood has a responder on answer reply n times (floodData), as
// fast as Reply lets it, to one request of an asker on ask whose
// listener works 20 µs per reply and whose client queues few events,
// so that the replies pile up in its queue on the server. ask's
// maxpending is the caller's: small enough that the flood passes it
// unless the link that brings the replies is held back. The listener
// stops at the first reply until the asker's queue passes its
// high-water mark, so that the link is held however fast the asker
// would read: on a loaded machine the responder and the servers get
// less of the processor while the listener's work costs the same time,
// and the asker kept up without any hold now and then. It checks that
// every reply arrived, in order, that the asker was never dropped, and
// that the link was held for it.
//
// The replies are of 4 KiB, so that the asker, slower than the flood,
// still reads many MB/s: the server's writes to it return in steps, as
// it reads the socket's buffer, and the multicast link waits for it
// 100 ms at most each time it passes its mark. With 1 KiB replies and
// a listener working 200 µs on each, a step under the race detector
// took that long now and then, and the asker was dropped.
func replyFlood(t *testing.T, ask, answer *routertest.Server, n int) {
	t.Helper()
	rc := answer.Dial(t, "A", bus.Name("responder"))
	asked := make(chan bus.Message, 1)
	if _, err := rc.On("get", func(m bus.Message) {
		select {
		case asked <- m:
		default: // asked again before the first was taken: one will do
		}
	}); err != nil {
		t.Fatal(err)
	}
	var sub counter
	asker := sub.dial(t, ask, "A", bus.Name("asker"), bus.QueueLen(64))
	gate, open := closedGate(t) // after the dial: opened before the client closes
	if _, err := asker.Once("get-response", func(bus.Message) { <-gate }); err != nil {
		t.Fatal(err)
	}
	if _, err := asker.On("get-response", func(m bus.Message) {
		if floodSeq(m) != int(sub.got.Load()) {
			sub.outOfOrder.Add(1)
		}
		sub.got.Add(1)
		spin(20 * time.Microsecond)
	}); err != nil {
		t.Fatal(err)
	}
	// Asked with Emit, not Request: every reply then goes to the
	// listener. Asked again until the request crosses, as probe does.
	req := askUntilHeard(t, asker, "get", asked)
	id := asker.ID()
	replied := emitting(n, func(i int) error { return rc.Reply(req, floodData(i)) })
	waitPastHigh(t, ask, "A", id, func() bool { return sub.disconnects.Load() != 0 })
	open()
	if err := <-replied; err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "the asker", n)
	if asker.ID() != id {
		t.Errorf("the asker reconnected: it was dropped")
	}
	st := stats(t, ask, "A")
	if st.SlowConsumers != 0 || st.StallTimeouts != 0 || st.Dropped != 0 {
		t.Errorf("the asker's server: %d slow consumers, %d stall timeouts, %d frames dropped; want none",
			st.SlowConsumers, st.StallTimeouts, st.Dropped)
	}
	if st.Stalls == 0 {
		t.Error("the replies never waited for the asker, though its queue passed its high-water mark: nothing held back what fed it")
	}
	t.Logf("%d replies; held for the asker %d times, %v in all", n, st.Stalls, time.Duration(st.StalledMicros)*time.Microsecond)
}

// floodSize is the size of floodData's bin.
const floodSize = 4096

// floodData is the data of reply seq: a msgpack bin 16 of floodSize
// bytes, the sequence number first.
func floodData(seq int) bus.RawData {
	b := make([]byte, 3+floodSize)
	b[0], b[1], b[2] = 0xc5, floodSize>>8, floodSize&0xff
	binary.BigEndian.PutUint32(b[3:], uint32(seq))
	return bus.RawData(b)
}

// floodSeq reads the sequence number of floodData, -1 if it is not one.
func floodSeq(m bus.Message) int {
	if len(m.Data) != 3+floodSize || m.Data[0] != 0xc5 {
		return -1
	}
	return int(binary.BigEndian.Uint32(m.Data[3:]))
}

// askUntilHeard emits event from asker, again every 50 ms, until the
// responder's listener passes one on to heard (the first ones may reach
// no peer yet), and returns it; it fails the test after 20 s.
func askUntilHeard(t *testing.T, asker *bus.Client, event string, heard <-chan bus.Message) bus.Message {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if err := asker.Emit(event, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-heard:
			return m
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %q crossed to the responder in 20 s", event)
		}
	}
}
