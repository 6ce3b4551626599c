package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// startNATS starts a NATS server in this process, on a free loopback
// port, until the test ends.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// TestTopNATS: two servers with no multicast, bridged through a NATS
// server, one client of the first emitting at a known pace and one of
// the second listening. top -b --json, on each server at once, shows
// its NATS link connected, the first sending about the pace and the
// second receiving it, and the first among the second's peers, over
// NATS at about the pace. The plain snapshot has the link's line and
// the peer's address; once the NATS server is gone, the line says the
// link is disconnected.
func TestTopNATS(t *testing.T) {
	ns := startNATS(t)
	members := fmt.Sprintf(`"heartbeat": "100ms", "peertimeout": "2s", "nats": {"url": %q},
"channels": {"A": {"propagatetonats": true, "acceptfromnats": true}}`, ns.ClientURL())
	s1, s2 := routertest.NewServer(t, members), routertest.NewServer(t, members)
	routertest.WaitFor(t, "each server to hear the other over NATS", func() bool {
		return len(s1.NATSPeers()) == 1 && len(s2.NATSPeers()) == 1
	})
	heard := routertest.Record(t, s2.Dial(t, "A", bus.Name("sub")), "tick")
	stop := pace(t, s1.Dial(t, "A", bus.Name("pub")), make([]byte, 100))
	defer stop()
	routertest.WaitFor(t, "the first events over NATS", func() bool { return heard.Count("tick") > pacedRate/4 })

	// Both tops at once: their intervals are the same two seconds of
	// the pace.
	var wg sync.WaitGroup
	outs := make([]result, 2)
	for i, s := range []*routertest.Server{s1, s2} {
		wg.Go(func() { outs[i] = ncclient(t, s.Template, "", "top", "-b", "-n", "2", "-d", "2", "--json") })
	}
	wg.Wait()
	for i, r := range outs {
		if r.code != 0 {
			t.Fatalf("top on server %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	for i, l := range strings.Split(strings.TrimSpace(outs[0].stdout), "\n") {
		snap := natsSnapshot(t, l)
		if got := snap.NATSRates["events_out"]; !near(got, pacedRate, 0.4) {
			t.Errorf("sender, snapshot %d: %.1f events/s out to NATS, want about %d\n%s", i, got, pacedRate, l)
		}
	}
	for i, l := range strings.Split(strings.TrimSpace(outs[1].stdout), "\n") {
		snap := natsSnapshot(t, l)
		if got := snap.NATSRates["events_in"]; !near(got, pacedRate, 0.4) {
			t.Errorf("receiver, snapshot %d: %.1f events/s in from NATS, want about %d\n%s", i, got, pacedRate, l)
		}
		if len(snap.Peers) != 1 || snap.Peers[0].Node != s1.Node().String() || snap.Peers[0].Addr != "nats" {
			t.Fatalf("receiver, snapshot %d: peers %+v; want the sender (%s), over NATS", i, snap.Peers, s1.Node())
		}
		// A peer over NATS counts its events as datagrams.
		if got := snap.Peers[0].DatagramsRate; !near(got, pacedRate, 0.4) {
			t.Errorf("receiver, snapshot %d: the sender's %.1f events/s, want about %d", i, got, pacedRate)
		}
	}

	out := must(t, s2.Template, "top", "-b", "-n", "1", "-d", "50ms")
	for _, want := range []string{"network: off", "nats: connected to " + ns.ClientURL(), "ADDR", s1.Node().String()[:8]} {
		if !strings.Contains(out, want) {
			t.Errorf("top -b -n 1: no %q in\n%s", want, out)
		}
	}
	ns.Shutdown()
	routertest.WaitFor(t, "the receiver to lose NATS", func() bool {
		st, _ := s2.NATSStats()
		return !st.Connected
	})
	if out := must(t, s2.Template, "top", "-b", "-n", "1", "-d", "50ms"); !strings.Contains(out, "nats: disconnected") {
		t.Errorf("top -b -n 1 with NATS gone: no \"nats: disconnected\" in\n%s", out)
	}
}

// natsSnapshot reads a JSON snapshot of a server with a NATS link,
// which must show the link connected.
func natsSnapshot(t *testing.T, line string) *snapshot {
	t.Helper()
	var snap snapshot
	if err := json.Unmarshal([]byte(line), &snap); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, line)
	}
	if on, _ := snap.NATS["connected"].(bool); !on {
		t.Fatalf("snapshot: the NATS link is not connected: %v", snap.NATS)
	}
	for _, k := range natsRateKeys {
		if _, ok := snap.NATSRates[k]; !ok {
			t.Errorf("snapshot: no NATS rate %q in %v", k, snap.NATSRates)
		}
	}
	return &snap
}
