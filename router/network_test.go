package router_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// netMembers are the configuration members of a server on the test
// namespace's multicast group: on lo, at port, with short timers.
func netMembers(port int, cluster, members string) string {
	return patientMembers(port, cluster, "300ms", members)
}

// patientMembers are netMembers with a peertimeout of peerTimeout, for
// a test whose peers may go quiet for longer than netMembers allows.
func patientMembers(port int, cluster, peerTimeout, members string) string {
	return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": %q,
"heartbeat": "50ms", "peertimeout": %q,
%s`, mcasttest.Interface, port, cluster, peerTimeout, members)
}

func netServer(t *testing.T, port int, cluster, members string) *routertest.Server {
	t.Helper()
	mcasttest.Need(t)
	return routertest.NewServer(t, netMembers(port, cluster, members))
}

// waitPeers waits until every server lists all the others as peers.
func waitPeers(t *testing.T, servers ...*routertest.Server) {
	t.Helper()
	for _, s := range servers {
		routertest.WaitFor(t, "peers to appear", func() bool { return len(s.Peers()) == len(servers)-1 })
	}
}

func TestNetTwoServersBothWays(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true, "propagatetochannels": "B"}, "B": {}}`)
	waitPeers(t, s1, s2)

	a1, a1peer := s1.Dial(t, "A"), s1.Dial(t, "A")
	a2, b2 := s2.Dial(t, "A"), s2.Dial(t, "B")
	recA1, recA1peer := routertest.Record(t, a1, ".*"), routertest.Record(t, a1peer, ".*")
	recA2, recB2 := routertest.Record(t, a2, ".*"), routertest.Record(t, b2, ".*")

	if err := a1.Emit("there", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := a2.Emit("back", "hello"); err != nil {
		t.Fatal(err)
	}
	recA2.WaitCount(t, "there", 1)
	recB2.WaitCount(t, "there", 1)
	recA1.WaitCount(t, "back", 1)
	recA1peer.WaitCount(t, "back", 1)
	recA1peer.WaitCount(t, "there", 1)

	m := recA2.Messages()[slices.Index(recA2.Events(), "there")]
	if m.Origin != s1.Node() || m.Sender != a1.ID() || m.Channel != "A" {
		t.Errorf("s2 heard origin %v sender %v channel %s; want %v, %v, A", m.Origin, m.Sender, m.Channel, s1.Node(), a1.ID())
	}
	var data map[string]int
	if err := m.Decode(&data); err != nil || data["n"] != 1 {
		t.Errorf("data %v, %v", data, err)
	}
	// Nothing is heard twice, and events from the network never go back
	// to it: each server sent only the one event its own client emitted.
	// A client's own listeners hear what it emits, so every client has
	// heard each event once, and no more.
	routertest.Fence(t, s2, "A", recA2)
	routertest.Fence(t, s1, "A", recA1)
	for name, rec := range map[string]*routertest.Recorder{"a1": recA1, "a1peer": recA1peer, "a2": recA2} {
		for _, ev := range []string{"there", "back"} {
			if n := rec.Count(ev); n != 1 {
				t.Errorf("%s heard %q %d times, want once", name, ev, n)
			}
		}
	}
	if n := recB2.Count("there"); n != 1 {
		t.Errorf("b2 heard %q %d times, want once", "there", n)
	}
	// Events from the network never go back to it: each server sent the
	// two events its own clients emitted (one of them a fence's marker).
	routertest.WaitFor(t, "both fences to cross", func() bool {
		return s1.NetStats().Delivered == 2 && s2.NetStats().Delivered == 2
	})
	for i, s := range []*routertest.Server{s1, s2} {
		st := s.NetStats()
		if !st.Connected || st.Link.MessagesSent != 2 || st.Link.Dropped() != 0 || st.Link.Duplicates != 0 {
			t.Errorf("server %d: %+v", i+1, st)
		}
	}
}

func TestNetThreeHosts(t *testing.T) {
	hosts := mcasttest.Hosts(t, 3)
	port := mcasttest.Port()
	servers := make([]*routertest.Server, len(hosts))
	for i, h := range hosts {
		members := fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": "hosts",
"heartbeat": "50ms", "peertimeout": "300ms",
"channels": {"A": {"propagatetonet": true}}`, mcasttest.HostInterface, port)
		h.Do(func() { servers[i] = routertest.NewServer(t, members) })
		if servers[i] == nil {
			t.FailNow()
		}
	}
	waitPeers(t, servers...)
	for i, s := range servers {
		for _, p := range s.Peers() {
			if p.Addr.Addr() == hosts[i].Addr || !slices.ContainsFunc(hosts, func(h *mcasttest.Host) bool { return h.Addr == p.Addr.Addr() }) {
				t.Errorf("host %d lists a peer at %v", i, p.Addr)
			}
		}
	}
	recs := make([]*routertest.Recorder, len(servers))
	clients := make([]*bus.Client, len(servers))
	for i, s := range servers {
		clients[i] = s.Dial(t, "A")
		recs[i] = routertest.Record(t, clients[i], ".*")
	}
	if err := clients[0].Emit("hello", "from host 1"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(servers); i++ {
		recs[i].WaitCount(t, "hello", 1)
		if o := recs[i].Messages()[0].Origin; o != servers[0].Node() {
			t.Errorf("host %d: origin %v, want host 1's node %v", i+1, o, servers[0].Node())
		}
	}
}

func TestNetLargeEvent(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {}}`)
	a1, a2 := s1.Dial(t, "A"), s2.Dial(t, "A")
	rec := routertest.Record(t, a2, ".*")
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i*31 + i>>8)
	}
	if err := a1.Emit("big", big); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "big", 1)
	var got []byte
	if err := rec.Messages()[0].Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Errorf("got %d bytes, not the %d sent", len(got), len(big))
	}
	if st := s1.NetStats().Link; st.DatagramsSent < 190 {
		t.Errorf("256 KiB took %d datagrams; it should be fragmented", st.DatagramsSent)
	}
}

// TestNetNothingHeard covers the servers that must hear nothing: one of
// another cluster, and one whose channel does not accept events from
// the network.
func TestNetNothingHeard(t *testing.T) {
	tests := []struct {
		name, cluster, channels string
		dropped                 func(router.NetStats) uint64
	}{
		{"another cluster", "other", `{"A": {"propagatetochannels": "B"}, "B": {}}`,
			func(s router.NetStats) uint64 { return s.Link.OtherCluster }},
		{"acceptfromnet false", "t", `{"A": {"acceptfromnet": false, "propagatetochannels": "B"}, "B": {}}`,
			func(s router.NetStats) uint64 { return s.Refused }},
		{"channel not served", "t", `{"B": {}}`,
			func(s router.NetStats) uint64 { return s.NoChannel }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := mcasttest.Port()
			s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
			deaf := netServer(t, port, tc.cluster, `"channels": `+tc.channels)
			recs := make(map[string]*routertest.Recorder)
			for _, ch := range []string{"A", "B"} {
				if _, ok := deaf.Clients(ch); ok {
					recs[ch] = routertest.Record(t, deaf.Dial(t, ch), ".*")
				}
			}
			if err := s1.Dial(t, "A").Emit("unheard", nil); err != nil {
				t.Fatal(err)
			}
			routertest.WaitFor(t, "the event to be sent", func() bool { return s1.NetStats().Link.MessagesSent == 1 })
			routertest.WaitFor(t, "the server to drop it", func() bool { return tc.dropped(deaf.NetStats()) > 0 })
			for ch, rec := range recs {
				routertest.Fence(t, deaf, ch, rec)
				if n := rec.Count("unheard"); n != 0 {
					t.Errorf("a client heard the event %d times", n)
				}
			}
			if d := deaf.NetStats().Delivered; d != 0 {
				t.Errorf("delivered %d events", d)
			}
		})
	}
}

// TestNetPeerListed: a server lists the other with its channels and
// version; once the other shuts down, it lists it no more (it left:
// TestNetLeaving; a peer that falls silent ages out: multicast's
// TestPeersAppearAndAgeOut).
func TestNetPeerListed(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {}, "B": {}}`)
	waitPeers(t, s1, s2)
	p := s1.Peers()[0]
	if p.Node != s2.Node() || !slices.Equal(p.Channels, []string{"A", "B", "control"}) || !strings.HasPrefix(p.Version, "netcluster ") {
		t.Errorf("s1 lists %+v", p)
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "s1 to forget s2", func() bool { return len(s1.Peers()) == 0 })
	// The log line follows the table's change.
	routertest.WaitFor(t, "a log of the peer leaving", func() bool { return strings.Contains(s1.Logs.String(), "peer left the cluster") })
}

func TestNetDump(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"dumpnet": true, "channels": {"A": {}}`)
	rec := routertest.Record(t, s2.Dial(t, "A"), ".*")
	if err := s1.Dial(t, "A").Emit("dumped", nil); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "dumped", 1)
	logs := s2.Logs.String()
	for _, want := range []string{"msg=datagram", "kind=data", "kind=heartbeat", "node=" + s1.Node().String()} {
		if !strings.Contains(logs, want) {
			t.Errorf("dumpnet log lacks %q", want)
		}
	}
}

func TestNetStartFails(t *testing.T) {
	mcasttest.Need(t)
	dir := routertest.ShortTempDir(t)
	cfg, err := router.Parse("test.json", []byte(fmt.Sprintf(`{"socket": %q, "connecttonet": true, "interface": "eth7", "channels": {"A": {}}}`, dir+"/{channel}.sock")))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		srv.Close()
		t.Fatal("started on a missing interface")
	}
	if want := `router: connecttonet: multicast: no network interface "eth7"; this host has: lo`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	// It opened all its sockets or none: a server can start on them now.
	routertest.NewServerIn(t, dir, `"channels": {"A": {}}`)
}

// TestNetBadInput sends a server datagrams that a broken or hostile node
// might: garbage, a well-formed datagram whose message is not an event,
// events whose names break the event-name rule, and an event for a
// channel the server lacks. Each is dropped and counted, and the server
// still delivers good events.
func TestNetBadInput(t *testing.T) {
	port := mcasttest.Port()
	s := netServer(t, port, "t", `"channels": {"A": {}}`)
	rec := routertest.Record(t, s.Dial(t, "A"), ".*")
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(239, 255, 77, 77), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node := uuid.New()
	var seq uint64
	send := func(msg []byte) {
		t.Helper()
		seq++
		h := multicast.Header{Kind: multicast.KindData, Records: 1, Cluster: multicast.ClusterIDOf("t"), Node: node, Seq: seq}
		d := multicast.AppendRecord(multicast.AppendHeader(nil, &h), &multicast.Record{ID: uuid.New(), Count: 1, Total: len(msg), Payload: msg})
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	event := func(channel, name string) []byte {
		return wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node, Sender: uuid.New(), Channel: channel, Event: name})[wire.HeaderLen:]
	}
	if _, err := conn.Write([]byte("garbage")); err != nil {
		t.Fatal(err)
	}
	send([]byte{0x93, 0x01, 0x02, 0x03})                       // a msgpack array, not an Event frame
	send(event("A", strings.Repeat("n", wire.MaxEventName+1))) // longer than a name may be
	send(event("A", "bad\xff"))                                // not UTF-8
	send(event("Z", "nowhere"))
	send(event("A", "good"))
	rec.WaitCount(t, "good", 1)
	routertest.WaitFor(t, "the drops to be counted", func() bool {
		st := s.NetStats()
		return st.Link.BadMagic == 1 && st.Malformed == 3 && st.NoChannel == 1 && st.Delivered == 1
	})
	if got := rec.Events(); !slices.Equal(got, []string{"good"}) {
		t.Errorf("heard %q", got)
	}
}

// TestNetControl asks the control channel for the peer table and the
// network's counters, and checks that a reply on a propagatetonet channel
// stays with its one local client.
func TestNetControl(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"metrics": "127.0.0.1:0", "channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	waitPeers(t, s1, s2)

	// A request answered on s1 crosses to s2 (requests are ordinary
	// events); the answer reaches the asker only and is not multicast.
	asker, replier := s1.Dial(t, "A"), s1.Dial(t, "A")
	heardOnS2 := routertest.Record(t, s2.Dial(t, "A"), ".*")
	if _, err := replier.On("ask", func(m bus.Message) { replier.Reply(m, "answer") }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := asker.Request(ctx, "ask", nil)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Event != "ask"+bus.ReplySuffix || reply.Sender != replier.ID() {
		t.Errorf("reply %s from %v; want ask-response from the replier", reply.Event, reply.Sender)
	}
	heardOnS2.WaitCount(t, "ask", 1)
	routertest.Fence(t, s1, "A", heardOnS2)
	if n := heardOnS2.Count("ask" + bus.ReplySuffix); n != 0 {
		t.Errorf("s2 heard the reply %d times; replies never cross the network", n)
	}

	ctl := s1.Dial(t, router.ControlChannel)
	peers := routertest.Control(t, ctl, "peers", nil)
	list, _ := peers["peers"].([]any)
	if peers["network"] != true || len(list) != 1 {
		t.Fatalf("peers answered %v", peers)
	}
	p, _ := list[0].(map[string]any)
	if p["node"] != s2.Node().String() || p["host"] == "" || fmt.Sprint(p["pid"]) == "0" {
		t.Errorf("peer %v; want s2 (%v) with its host and pid", p, s2.Node())
	}
	// The peer table counts the datagrams of a peer once it has heard
	// its first heartbeat; the next heartbeat comes within 50 ms.
	var stats map[string]any
	routertest.WaitFor(t, "stats to count s2's datagrams", func() bool {
		stats = routertest.Control(t, ctl, "stats", nil)
		perPeer, _ := stats["peers"].(map[string]any)
		pp, _ := perPeer[s2.Node().String()].(map[string]any)
		return pp != nil && fmt.Sprint(pp["datagrams"]) != "0"
	})
	netStats, _ := stats["network"].(map[string]any)
	if netStats["connected"] != true || fmt.Sprint(netStats["messages_sent"]) == "0" {
		t.Errorf("stats network %v", netStats)
	}
	// The metrics endpoint shows the same network and peer counters.
	body := scrape(t, s1, "/metrics")
	for _, want := range []string{
		"netcluster_net_connected 1",
		`netcluster_net_events_total{direction="out"}`,
		`netcluster_peer_datagrams_total{host="`,
		`peer="` + s2.Node().String() + `"}`,
		"netcluster_net_peers 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestNetReload changes the network keys by reloading: the server joins
// another cluster, keeps its clients, refuses an interface that does not
// exist without changing anything, and leaves the group when
// connecttonet becomes false.
func TestNetReload(t *testing.T) {
	port := mcasttest.Port()
	chans := `"channels": {"A": {"propagatetonet": true}}`
	s1 := netServer(t, port, "one", chans)
	s2 := netServer(t, port, "two", chans)
	a1, a2 := s1.DialWatched(t, "A"), s2.Dial(t, "A")
	rec1, rec2 := routertest.Record(t, a1.Client, ".*"), routertest.Record(t, a2, ".*")

	// s1 joins s2's cluster: the peers meet, and events cross both ways
	// to the clients s1 had before the reload.
	rep, err := s1.Reload(s1.ParseConfig(t, netMembers(port, "two", chans)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Settings, "cluster") {
		t.Errorf("the reload report's settings are %v; want cluster among them", rep.Settings)
	}
	waitPeers(t, s1, s2)
	a1.Emit("from1", nil)
	a2.Emit("from2", nil)
	rec2.WaitCount(t, "from1", 1)
	rec1.WaitCount(t, "from2", 1)
	s1.CheckKept(t, a1) // the reload kept s1's client connected

	// An interface that does not exist: the reload fails, and s1 stays
	// in the group with its link.
	bad := `"connecttonet": true, "interface": "nosuch0", "port": ` + fmt.Sprint(port) + `, "cluster": "two", ` + chans
	if _, err := s1.Reload(s1.ParseConfig(t, bad)); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("reload onto a missing interface: %v; want an error naming it", err)
	}
	a2.Emit("still", nil)
	rec1.WaitCount(t, "still", 1)

	// Off the network: s1 leaves the group, and s2 hears nothing more.
	if _, err := s1.Reload(s1.ParseConfig(t, chans)); err != nil {
		t.Fatal(err)
	}
	if s1.NetStats().Connected || s1.Peers() != nil {
		t.Errorf("after connecttonet false: %+v, peers %v", s1.NetStats(), s1.Peers())
	}
	a1.Emit("local", nil)
	routertest.Fence(t, s1, "A", rec1)
	routertest.WaitFor(t, "s2 to age s1 out", func() bool { return len(s2.Peers()) == 0 })
	if n := rec2.Count("local"); n != 0 {
		t.Errorf("s2 heard an event s1 emitted off the network %d times", n)
	}
	// And back on.
	if _, err := s1.Reload(s1.ParseConfig(t, netMembers(port, "two", chans))); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, s1, s2)
	a2.Emit("again", nil)
	rec1.WaitCount(t, "again", 1)

	for i, r := range []*routertest.Recorder{rec1, rec2} {
		for _, ev := range []string{"from1", "from2", "still"} {
			if n := r.Count(ev); n != 1 {
				t.Errorf("client %d heard %q %d times, want once", i+1, ev, n)
			}
		}
	}
}

// TestNetLeaving: a server that leaves the group says so, and the other
// forgets it at once, as a peer and as a receiver in flow control,
// although peertimeout is a minute: when a reload sets connecttonet
// false, and when it shuts down. A reload that swaps its link in the
// same group and cluster (another ttl) does not: the other sees one
// unbroken peer.
func TestNetLeaving(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	members := func(ttl int, net bool) string {
		return fmt.Sprintf(`"connecttonet": %t, "interface": %q, "port": %d, "cluster": "leaving", "ttl": %d,
"heartbeat": "50ms", "peertimeout": "1m", "channels": {"A": {"propagatetonet": true}}`, net, mcasttest.Interface, port, ttl)
	}
	s1, s2 := routertest.NewServer(t, members(1, true)), routertest.NewServer(t, members(1, true))
	waitPeers(t, s1, s2)
	receivers := func() int { return s1.NetStats().Link.FlowReceivers }
	routertest.WaitFor(t, "s1 to take s2 as a receiver", func() bool { return receivers() == 1 })
	reload := func(cfg string) {
		t.Helper()
		if _, err := s2.Reload(s2.ParseConfig(t, cfg)); err != nil {
			t.Fatal(err)
		}
	}
	left := func() int { return logCount(s1, "peer left the cluster") }

	first := s1.Peers()[0].FirstSeen
	reload(members(2, true))
	time.Sleep(300 * time.Millisecond) // heartbeats of s2's new link
	if left() != 0 || len(s1.Peers()) != 1 || s1.Peers()[0].FirstSeen.After(first) {
		t.Fatalf("a reload in the same group took s2 out of s1's peers:\n%s", s1.Logs)
	}

	// The link logs a leave after it has dropped the peer: wait for both.
	reload(members(2, false))
	routertest.WaitFor(t, "s1 to forget s2, whose reload left the group, and log it", func() bool { return len(s1.Peers()) == 0 && left() == 1 })
	if r := receivers(); r != 0 {
		t.Errorf("%d receivers after s2 left; want 0", r)
	}

	reload(members(2, true))
	waitPeers(t, s1, s2)
	routertest.WaitFor(t, "s1 to take s2 as a receiver again", func() bool { return receivers() == 1 })
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "s1 to forget s2, shut down, and log it", func() bool { return len(s1.Peers()) == 0 && left() == 2 })
	if r := receivers(); r != 0 {
		t.Errorf("%d receivers after s2 shut down; want 0", r)
	}
	if st := s1.NetStats().Link; st.FlowExcluded != 0 {
		t.Errorf("flow_excluded %d: a server that left was taken as silent", st.FlowExcluded)
	}
}

// TestNetMovedNotHeldBack: a server that a reload moves to another
// cluster leaves the old one, and its flow control forgets the
// receivers there, which hear it no more: a burst of several of their
// windows goes out at once, although peertimeout is a minute.
func TestNetMovedNotHeldBack(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	members := func(cluster string) string {
		return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": %q,
"heartbeat": "50ms", "peertimeout": "1m", "channels": {"A": {"propagatetonet": true}}`, mcasttest.Interface, port, cluster)
	}
	s1, s2 := routertest.NewServer(t, members("x")), routertest.NewServer(t, members("x"))
	waitPeers(t, s1, s2)
	routertest.WaitFor(t, "s1 to take s2 as a receiver", func() bool { return s1.NetStats().Link.FlowReceivers == 1 })
	if _, err := s1.Reload(s1.ParseConfig(t, members("y"))); err != nil {
		t.Fatal(err)
	}
	if n := s1.NetStats().Link.FlowReceivers; n != 0 {
		t.Errorf("s1 moved to another cluster still waits for %d receivers", n)
	}
	routertest.WaitFor(t, "s2 to forget s1, which left its cluster", func() bool { return len(s2.Peers()) == 0 })

	pub := s1.Dial(t, "A")
	r := routertest.Record(t, s1.Dial(t, "A"), "n")
	n := 4 * s2.NetStats().Link.Window
	data := strings.Repeat("x", 1000) // a datagram each
	for range n {
		if err := pub.Emit("n", data); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitCount(t, "n", n)
	if st := s1.NetStats(); st.Link.FlowExcluded != 0 || st.SendFailed != 0 {
		t.Errorf("flow_excluded %d, send_failed %d; want 0 and 0", st.Link.FlowExcluded, st.SendFailed)
	}
}
