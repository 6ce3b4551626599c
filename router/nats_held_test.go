package router_test

import (
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNATSHeldPublisherKeepsItsConnection: a publisher that NATS flow
// control holds back for longer than its client's ping timeout keeps
// its connection, and every event it emitted arrives, in order. The
// receiving server's only other client stops, so its link holds back
// (HoldBackStall), and the sending server holds the publisher until
// that client is dropped for taking nothing for stalltimeout (3 s).
// The client gives a server it hears nothing from up after 1 s. Before,
// the sending server read nothing from the held publisher and sent it
// nothing: the client took the server for dead, reconnected, and the
// events of the write it cut were lost, counted nowhere.
func TestNATSHeldPublisherKeepsItsConnection(t *testing.T) {
	ns := startNATS(t, 0)
	url := ns.ClientURL()
	// The sender leaves a receiver without progress out of flow control
	// only after 20 s: the hold lasts until the stopped client is
	// dropped. It pings its silent clients after 200 ms, and so its
	// held ones as often.
	cfg := natsMembers(url, "", `"pinginterval": "200ms", "pingtimeout": "2s", `+sendOnly)
	patient := strings.Replace(cfg, `"peertimeout": "2s"`, `"peertimeout": "20s"`, 1)
	if patient == cfg {
		t.Fatal("natsMembers sets no peertimeout of 2 s to replace")
	}
	s1 := routertest.NewServer(t, patient)
	s2 := routertest.NewServer(t, natsMembers(url, `"pendingmsgs": 64, "pendingbytes": 131072`,
		`"maxframe": 16384, "maxpending": 65536, "stalltimeout": "3s", `+bridged))
	waitNATS(t, s1, s2)
	all := routertest.Record(t, s2.Dial(t, "A"), ".*")
	stuck := s2.Dial(t, "A", bus.QueueLen(16))
	release := make(chan struct{})
	if _, err := stuck.On("seq", func(bus.Message) { <-release }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release) }) // before the client closes

	var pc counter
	pub := pc.dial(t, s1, "A", bus.Ping(200*time.Millisecond, time.Second))
	probe(t, pub, all)
	routertest.WaitFor(t, "the receiver's report", func() bool { return natsStats(t, s1).FlowReceivers >= 1 })

	const n = 20_000
	emitAll(t, pub, "seq", n)
	if !routertest.WaitProgress(func() bool { return all.Count("seq") >= n }, func() int { return all.Count("seq") }) {
		t.Errorf("%d of %d events delivered, and none more for 10 s", all.Count("seq"), n)
		pc.check(t, "the publisher", 0)
		t.FailNow()
	}
	routertest.Fence(t, s2, "A", all)
	checkSeq(t, "the receiver", seqsOf(all), n)
	st := natsStats(t, s1)
	if st.FlowHeldMs < 2000 {
		t.Fatalf("the publisher was held back %d ms in all, not past its ping timeout (1 s): the test proves nothing", st.FlowHeldMs)
	}
	pc.check(t, "the publisher", 0)
	t.Logf("held back %d times, %d ms in all", st.FlowHeld, st.FlowHeldMs)
}
