package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// The network test runs alone in a private network namespace, where its
// datagrams cannot leave the machine: TestTopNetwork runs the test binary
// again under `unshare -rn` for itself only, with these variables set.
const (
	netnsMarker = "NETCLUSTER_TEST_NETNS" // what mcasttest reads: "inside"
	netnsBinary = "NCCLIENT_TEST_BINARY"  // the ncclient binary built outside
)

// inNetns says whether this is the test binary run again inside the
// namespace.
func inNetns() bool { return os.Getenv(netnsMarker) == "inside" && os.Getenv(netnsBinary) != "" }

// runInNetns sets up the namespace's loopback for multicast, and runs
// the tests (TestTopNetwork alone) with the binary built outside.
func runInNetns(m *testing.M) int {
	mcasttest.Main()
	binary = os.Getenv(netnsBinary)
	return m.Run()
}

// TestTopNetwork: two servers on one multicast group, a client of the
// second emitting at a known pace onto the network; top -b --json on the
// first shows the second as a peer, with the events delivered from the
// network a second near the pace, and no loss on a loopback.
func TestTopNetwork(t *testing.T) {
	if !inNetns() {
		runTestInNetns(t)
		return
	}
	mcasttest.Need(t)
	port := mcasttest.Port()
	members := fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": "top",
"heartbeat": "200ms", "channels": {"A": {"propagatetonet": true}}`, mcasttest.Interface, port)
	s1, s2 := routertest.NewServer(t, members), routertest.NewServer(t, members)
	for _, s := range []*routertest.Server{s1, s2} {
		routertest.WaitFor(t, "the peers to hear each other", func() bool { return len(s.Peers()) == 1 })
	}
	heard := routertest.Record(t, s1.Dial(t, "A", bus.Name("sub")), "tick")
	stop := pace(t, s2.Dial(t, "A", bus.Name("pub")), make([]byte, 100))
	routertest.WaitFor(t, "the first events across", func() bool { return heard.Count("tick") > pacedRate/4 })

	out := must(t, s1.Template, "top", "-b", "-n", "2", "-d", "1", "--json")
	stop()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("top -b -n 2 printed %d lines, want 2:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var snap snapshot
		if err := json.Unmarshal([]byte(l), &snap); err != nil {
			t.Fatalf("snapshot %d: %v\n%s", i, err, l)
		}
		if got := snap.Net["delivered"]; !near(got, pacedRate, 0.4) {
			t.Errorf("snapshot %d: %.1f events/s delivered from the network, want about %d\n%s", i, got, pacedRate, l)
		}
		j := slices.IndexFunc(snap.Peers, func(p topPeer) bool { return p.Node == s2.Node().String() })
		if j < 0 {
			t.Fatalf("snapshot %d: no peer %s\n%s", i, s2.Node(), l)
		}
		p := snap.Peers[j]
		// Events go out batched into datagrams, with heartbeats between.
		if p.DatagramsRate <= 0 || p.DatagramsRate > 2*pacedRate || p.BytesRate < pacedRate*100 || p.Loss != 0 || p.Lost != 0 {
			t.Errorf("snapshot %d: peer %+v; want datagrams a second, at least %d bytes a second, no loss", i, p, pacedRate*100)
		}
	}
}

// runTestInNetns runs TestTopNetwork in the test binary again, inside a
// new user and network namespace, or skips saying why it cannot.
func runTestInNetns(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2's ip command is not installed: the network test runs in a private network namespace")
	}
	if out, err := exec.Command("unshare", "-rn", "true").CombinedOutput(); err != nil {
		t.Skipf("this system does not let the test make a private network namespace: %v: %s", err, out)
	}
	cmd := exec.Command("unshare", "-rn", "--", os.Args[0], "-test.run=^TestTopNetwork$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), netnsMarker+"=inside", netnsBinary+"="+binary)
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "--- SKIP: TestTopNetwork") {
		t.Skipf("inside the network namespace, the test skipped:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTopNetwork") {
		t.Fatalf("TestTopNetwork in a network namespace: %v\n%s", err, out)
	}
	t.Logf("in a network namespace:\n%s", out)
}
