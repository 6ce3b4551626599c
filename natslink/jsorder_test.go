package natslink

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestJetStreamOrder: what a JetStream consumer delivers out of its
// senders' numbering is put back in order. A plain NATS connection
// stores numbered events in the stream out of order (4 before 3, 11
// before 10 and 9); the link delivers them in order. One number that
// never comes (6) holds the events after it back for jsReorderWait at
// most: then they go, in order, and it is counted missed, once. Events
// of another sender, and unnumbered ones, never wait. A copy of an
// event delivered is dropped; the one given up on, come late, goes.
func TestJetStreamOrder(t *testing.T) {
	// The events from e7 to plain are published, each waiting for the
	// stream's ack, while e7 waits for e6: within the wait, here long
	// enough for a loaded machine, and waited out once.
	reorderWait(t, 2*time.Second)
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	var mu sync.Mutex
	var got []string
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: "order",
		Logger: slog.New(slog.DiscardHandler)}, func(ev *Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev.Event)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetChannels([]string{"A"})

	js := jetStreamClient(t, ns.ClientURL())
	waitFor(t, "the link's consumer", func() bool {
		_, err := js.Consumer(context.Background(), StreamName("netcluster", ""), "order")
		return err == nil
	})
	origin := uuid.New()
	publish := func(name, seq string) {
		m := nats.NewMsg(Subject("netcluster", "", "A"))
		m.Header.Set(HeaderEvent, name)
		m.Header.Set(HeaderOrigin, origin.String())
		if seq != "" {
			m.Header.Set(HeaderSeq, seq)
		}
		m.Data = []byte{0xc0}
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{1, 2, 4, 3, 5, 7, 8, 11, 10, 9} {
		publish("e"+strconv.Itoa(n), "e."+strconv.Itoa(n))
	}
	publish("f1", "f.1") // another sender: does not wait for e's 6
	publish("plain", "") // not numbered: does not wait either
	want := []string{"e1", "e2", "e3", "e4", "e5", "f1", "plain", "e7", "e8", "e9", "e10", "e11"}
	waitFor(t, "every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	})
	check := func(want []string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	check(want)
	if m := l.Stats().MissedIn; m != 1 {
		t.Errorf("%d events counted missed, want 1 (e6)", m)
	}

	// A copy of an event delivered (a sender sends again what NATS did
	// not acknowledge) is dropped; the event given up on, come late
	// (NATS redelivers after AckWait), is delivered late.
	publish("e3 again", "e.3")
	publish("e6", "e.6")
	publish("e12", "e.12")
	want = append(want, "e6", "e12")
	waitFor(t, "the late event and the next", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	})
	check(want)
}

// TestJetStreamResetTriedAgain: a consumer reset that did not happen
// after a lost connection (the apply before it failed: NATS was slow to
// make the stream, say) is tried again at the next heartbeat, although
// the old subscription still runs; until then jsOrder holds nothing past
// a gap.
func TestJetStreamResetTriedAgain(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) { o.JetStream, o.StoreDir = true, t.TempDir() })
	var log syncBuffer
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), JetStream: true, Durable: "again",
		Heartbeat: 20 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetChannels([]string{"A"})
	state := func() (consuming, reset, paused bool) {
		l.js.mu.Lock()
		defer l.js.mu.Unlock()
		l.js.resetMu.Lock()
		defer l.js.resetMu.Unlock()
		l.js.order.mu.Lock()
		defer l.js.order.mu.Unlock()
		return l.js.cc != nil, l.js.reset, l.js.order.paused
	}
	waitFor(t, "the consumer, reset at start", func() bool {
		consuming, reset, paused := state()
		return consuming && !reset && !paused
	})
	// The connection's kick may still wait for jsLoop: it would apply
	// the consumer, and reset it, whatever the heartbeat does.
	waitFor(t, "jsLoop to take the connection's kick", func() bool { return len(l.js.kick) == 0 })
	time.Sleep(5 * l.cfg.Heartbeat)
	resets := strings.Count(log.String(), "reset the JetStream consumer")

	// What a lost connection leaves when the apply after it fails.
	l.jsLost()
	if _, reset, paused := state(); !reset || !paused {
		t.Fatalf("after jsLost: reset %v, paused %v; want both", reset, paused)
	}
	waitFor(t, "the reset, tried again", func() bool {
		consuming, reset, paused := state()
		return consuming && !reset && !paused
	})
	if n := strings.Count(log.String(), "reset the JetStream consumer"); n != resets+1 {
		t.Errorf("%d resets logged after the retry, want %d:\n%s", n, resets+1, log.String())
	}
}

// TestJetStreamResetRefused: a NATS server that does not answer a
// consumer reset (here its permissions forbid it; the same as a server
// too slow to answer) leaves the link logging the failure and asking
// again after the next lost connection, not giving resets up for good.
func TestJetStreamResetRefused(t *testing.T) {
	ns := startNATS(t, func(o *server.Options) {
		o.JetStream, o.StoreDir = true, t.TempDir()
		o.Users = []*server.User{{Username: "nc", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.CONSUMER.RESET.>"}}}}}
	})
	var log syncBuffer
	l, err := Open(Config{URL: ns.ClientURL(), User: "nc", Password: "pw", Node: uuid.New(), JetStream: true, Durable: "refused",
		Heartbeat: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&log, nil))}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetChannels([]string{"A"})
	const failed = "resetting the JetStream consumer failed"
	waitFor(t, "the reset at start to fail", func() bool { return strings.Count(log.String(), failed) == 1 })
	waitFor(t, "the consumer", func() bool {
		l.js.mu.Lock()
		defer l.js.mu.Unlock()
		return l.js.cc != nil
	})

	l.jsLost() // as a lost connection does
	waitFor(t, "the reset to be asked again", func() bool { return strings.Count(log.String(), failed) == 2 })
	if strings.Contains(log.String(), "has no consumer reset") {
		t.Errorf("a NATS server %s taken for one without consumer reset:\n%s", ns.ClientURL(), log.String())
	}
}

// TestServerHasReset: the NATS versions with a consumer reset.
func TestServerHasReset(t *testing.T) {
	for v, want := range map[string]bool{
		"2.15.3": true, "2.14.0": true, "2.14.0-beta.1": true, "v2.14.1": true, "3.0.0": true,
		"2.13.9": false, "2.10.22": false, "1.4.1": false,
		"": true, "dev": true, // unreadable: asked, and a failure logged
	} {
		if got := serverHasReset(v); got != want {
			t.Errorf("serverHasReset(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestPermissions: the NATS permissions docs/sites.md gives a server's
// user are enough for everything the link does, with JetStream and
// without: events both ways, a reply to a node, peers, flow reports,
// and with JetStream the stream, its acknowledgements and the consumer
// reset; NATS reports no violation (the link logs those as warnings).
func TestPermissions(t *testing.T) {
	t.Run("core", func(t *testing.T) { testPermissions(t, false, nil) })
	t.Run("jetstream", func(t *testing.T) { testPermissions(t, true, []string{"$JS.API.>", "$JS.ACK.>"}) })
	// Only the cluster's stream and its consumers.
	t.Run("jetstream-stream", func(t *testing.T) {
		testPermissions(t, true, []string{"$JS.API.STREAM.*.netcluster_site", "$JS.API.CONSUMER.*.netcluster_site.>",
			"$JS.API.CONSUMER.MSG.NEXT.netcluster_site.>", "$JS.ACK.netcluster_site.>"})
	})
}

// testPermissions runs the test with JetStream or not; js are the
// subjects allowed beside the cluster's to publish on with JetStream.
func testPermissions(t *testing.T, jetStream bool, js []string) {
	ns := startNATS(t, func(o *server.Options) {
		o.JetStream, o.StoreDir = true, t.TempDir()
		site := []string{"netcluster.site.>", "netcluster.$hb.site", "netcluster.$node.site.>", "netcluster.$flow.site.>"}
		pub, sub := site, site
		if jetStream {
			pub = append(js, site...)
			sub = append([]string{"_INBOX.>"}, site...)
		}
		o.Users = []*server.User{{Username: "nc", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: pub}, Subscribe: &server.SubjectPermission{Allow: sub}}}}
	})
	var log syncBuffer
	var mu sync.Mutex
	got := map[uuid.UUID][]string{}
	open := func(node uuid.UUID, durable string) *Link {
		l, err := Open(Config{URL: ns.ClientURL(), User: "nc", Password: "pw", Node: node, Cluster: "site",
			JetStream: jetStream, Durable: durable, FlowControl: true, Heartbeat: 20 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}, func(ev *Event) {
			mu.Lock()
			defer mu.Unlock()
			got[node] = append(got[node], ev.Event)
		})
		if err != nil {
			t.Fatal(err)
		}
		l.SetChannels([]string{"A"})
		return l
	}
	n1, n2 := uuid.New(), uuid.New()
	l1, l2 := open(n1, "one"), open(n2, "two")
	defer l1.Close()
	defer l2.Close()
	defer func() {
		if t.Failed() {
			t.Log(log.String())
		}
	}()
	resets := 0
	if jetStream {
		resets = 2
	}
	waitFor(t, "the peers, and with JetStream both consumers reset", func() bool {
		return len(l1.Peers()) == 1 && len(l2.Peers()) == 1 &&
			strings.Count(log.String(), "reset the JetStream consumer") == resets
	})
	asker := uuid.New()
	for _, p := range []struct {
		l    *Link
		ev   *Event
		node uuid.UUID
	}{
		{l1, &Event{Channel: "A", Event: "to-two", ID: uuid.New(), Origin: n1, Sender: asker, Data: []byte{0xc0}}, uuid.Nil},
		{l2, &Event{Channel: "A", Event: "to-one", ID: uuid.New(), Origin: n2, Sender: uuid.New(), Data: []byte{0xc0}}, uuid.Nil},
		{l2, &Event{Channel: "A", Event: "reply", ID: uuid.New(), Origin: n2, Sender: uuid.New(), To: asker, Re: uuid.New(), Data: []byte{0xc0}}, n1},
	} {
		if err := p.l.Publish(p.ev, p.node); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the events and the reply", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(got[n2], []string{"to-two"}) && len(got[n1]) == 2 &&
			slices.Contains(got[n1], "to-one") && slices.Contains(got[n1], "reply")
	})
	if !jetStream {
		waitFor(t, "flow reports both ways", func() bool { return l1.Stats().ReportsIn > 0 && l2.Stats().ReportsIn > 0 })
	}
	// Every heartbeat the links ask for their consumers' lag, and NATS
	// reports a violation after the fact: a few heartbeats more.
	time.Sleep(10 * 20 * time.Millisecond)
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("the link warned with the documented permissions:\n%s", log.String())
	}
}
