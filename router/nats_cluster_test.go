package router_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// startNATSCluster starts three NATS servers routed to each other, and
// waits until each has routes to the other two.
func startNATSCluster(t *testing.T) []*server.Server {
	t.Helper()
	var nodes []*server.Server
	var seed *url.URL
	for i := range 3 {
		ns := startNATS(t, 0, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i)
			o.Cluster = server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: -1}
			if seed != nil {
				o.Routes = []*url.URL{seed}
			}
		})
		if seed == nil {
			seed = &url.URL{Scheme: "nats", Host: ns.ClusterAddr().String()}
		}
		nodes = append(nodes, ns)
	}
	for _, ns := range nodes {
		routertest.WaitFor(t, "the NATS routes", func() bool { return ns.NumRoutes() >= 2 })
	}
	return nodes
}

// TestNATSClusterNodeKilled: two ncservers on different nodes of a
// three-node NATS cluster; the sender's node, or the receiver's, is
// killed mid-stream. The link on it fails over to another node, and the
// receiver hears the rest of the stream in order, nothing twice; what
// was in flight through the killed node at that moment, and, when it was
// the receiver's, what was sent until the receiver had subscribed again
// elsewhere, may be lost (docs/sites.md says so), and the receiver counts
// each event lost so (missed_in).
func TestNATSClusterNodeKilled(t *testing.T) {
	t.Run("sender's node", func(t *testing.T) { testNATSClusterNodeKilled(t, true) })
	t.Run("receiver's node", func(t *testing.T) { testNATSClusterNodeKilled(t, false) })
}

func testNATSClusterNodeKilled(t *testing.T, senders bool) {
	nodes := startNATSCluster(t)
	var all []string
	for _, ns := range nodes {
		all = append(all, ns.ClientURL())
	}
	first := natsNode(t, strings.Join(all, ","))
	// The node the first server is connected to (nats.go shuffles the
	// list) is killed; the second is on the others.
	var victim *server.Server
	var others []string
	for _, ns := range nodes {
		if ns.ClientURL() == natsStats(t, first).Server {
			victim = ns
		} else {
			others = append(others, ns.ClientURL())
		}
	}
	if victim == nil {
		t.Fatalf("the server is connected to %q, none of the nodes", natsStats(t, first).Server)
	}
	second := natsNode(t, strings.Join(others, ","))
	sender, receiver := first, second
	if !senders {
		sender, receiver = second, first
	}
	pub := sender.Dial(t, "A", bus.Name("sender"))
	r := routertest.Record(t, receiver.Dial(t, "A", bus.Name("receiver")), "n")
	probe(t, pub, routertest.Record(t, receiver.Dial(t, "A"), "probe"))
	const n = 2000
	for i := range n {
		if i == n/2 {
			stopNATS(victim)
		}
		if err := pub.Emit("n", i); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(2 * time.Millisecond) // a stream, not a burst
		}
	}
	got := increasingUpTo(t, r, "n", n-1)
	t.Logf("%d of %d events lost when the NATS node was killed", n-len(got), n)
	if st := natsStats(t, first); st.Reconnects < 1 {
		t.Errorf("the link on the killed node reconnected %d times", st.Reconnects)
	}
	if n-len(got) > n/2 {
		t.Errorf("%d of %d events lost: more than what was in flight", n-len(got), n)
	}
	if missed := natsStats(t, receiver).MissedIn; missed != uint64(n-len(got)) {
		t.Errorf("%d events lost, %d counted missed by the receiver", n-len(got), missed)
	}
}
