package router_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// lossyNet is a sending server and a receiving one on two test hosts,
// the receiving host's packet filter (nftables) dropping a share of the
// UDP datagrams it receives on the group's port: data, heartbeats and
// repairs alike.
type lossyNet struct {
	pub, sub *routertest.Server
	hosts    []*mcasttest.Host
	members  func(channels string) string
}

// newLossyNet starts a lossyNet that drops percent of the datagrams;
// extra are more configuration members of both servers (peertimeout
// among them: 2s unless extra sets it). Where nft is
// missing or refused, the test skips; the multicast package's
// TestRepairUnderLoss covers the same with a drop filter on the
// receiving socket.
func newLossyNet(t *testing.T, percent int, extra string) *lossyNet {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: nftables' nft is not installed; multicast's TestRepairUnderLoss drops on the socket instead")
	}
	n := &lossyNet{hosts: mcasttest.Hosts(t, 2)}
	port := mcasttest.Port()
	if !strings.Contains(extra, `"peertimeout"`) {
		extra = `"peertimeout": "2s", ` + extra
	}
	n.members = func(channels string) string {
		return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": "lossy",
"heartbeat": "50ms", %s "channels": %s`, mcasttest.HostInterface, port, extra, channels)
	}
	n.hosts[0].Do(func() { n.pub = routertest.NewServer(t, n.members(`{"A": {"propagatetonet": true}}`)) })
	n.hosts[1].Do(func() { n.sub = routertest.NewServer(t, n.members(`{"A": {}}`)) })
	if n.pub == nil || n.sub == nil {
		t.FailNow()
	}
	waitPeers(t, n.pub, n.sub)
	rules := [][]string{
		{"add", "table", "inet", "lossy"},
		{"add", "chain", "inet", "lossy", "in", "{ type filter hook input priority 0 ; }"},
		{"add", "rule", "inet", "lossy", "in", "udp", "dport", fmt.Sprint(port), "numgen", "random", "mod", "100", "<", fmt.Sprint(percent), "counter", "drop"},
	}
	for _, r := range rules {
		if err := n.hosts[1].Run("nft", r...); err != nil {
			t.Skipf("skipping: nft cannot filter in the test host: %v", err)
		}
	}
	return n
}

// restartSub stops the receiving server and starts another, with a new
// node id, on the same sockets.
func (n *lossyNet) restartSub(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.sub.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	old := n.sub
	n.sub = nil
	n.hosts[1].Do(func() { n.sub = routertest.NewServerWith(t, old.Dir, old.Template, n.members(`{"A": {}}`)) })
	if n.sub == nil {
		t.FailNow()
	}
}

// lossyHosts is newLossyNet, its servers and hosts.
func lossyHosts(t *testing.T, percent int, extra string) (pub, sub *routertest.Server, hosts []*mcasttest.Host) {
	t.Helper()
	n := newLossyNet(t, percent, extra)
	return n.pub, n.sub, n.hosts
}

// TestNetLossRepaired drops 5% and then 30% of the datagrams the
// receiving host gets, with a real packet filter: every event must reach
// the receiving server's client exactly once, in the order emitted,
// small and fragmented ones alike.
func TestNetLossRepaired(t *testing.T) {
	for _, tc := range []struct {
		percent int
		key     string // sealed with it: NAKs and repairs are sealed too
	}{{5, ""}, {30, ""}, {30, "loss-key"}} {
		name := fmt.Sprintf("%d%%", tc.percent)
		extra := `"gaptimeout": "20s",`
		if tc.key != "" {
			name += "-sealed"
			extra += fmt.Sprintf(` "key": %q,`, tc.key)
		}
		t.Run(name, func(t *testing.T) {
			// A long gaptimeout: a datagram whose repairs are dropped too
			// is asked for dozens of times, also on a busy machine.
			pub, sub, _ := lossyHosts(t, tc.percent, extra)
			got := make(chan int, 4096)
			c := sub.Dial(t, "A")
			c.On("n", func(m bus.Message) {
				var i int
				if err := m.Decode(&i); err != nil {
					t.Error(err)
				}
				got <- i
			})
			p := pub.Dial(t, "A")
			const n = 1000
			big := strings.Repeat("x", 5000) // four datagrams
			for i := range n {
				var err error
				if i%10 == 0 {
					err = p.Emit("big", big)
				}
				if err == nil {
					err = p.Emit("n", i)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			next := 0
			routertest.WaitFor(t, "every event", func() bool {
				for {
					select {
					case i := <-got:
						if i != next {
							t.Fatalf("event %d arrived when %d was due", i, next)
						}
						next++
					default:
						return next == n
					}
				}
			})
			st := sub.NetStats().Link
			t.Logf("receiver: %d datagrams, %d repaired, %d out of order, %d NAKs sent, %d late; sender: %d datagrams resent in %d repairs",
				st.DatagramsReceived, st.Repaired, st.OutOfOrder, st.NAKsSent, st.Late, pub.NetStats().Link.Resent, pub.NetStats().Link.RepairsSent)
			if st.Lost != 0 || st.Repaired == 0 {
				t.Errorf("the receiver lost %d datagrams and repaired %d", st.Lost, st.Repaired)
			}
			if tc.key != "" && (st.Unsealed != 0 || st.Forged != 0 || st.Replayed != 0 || st.Sealed != 0) {
				t.Errorf("sealed NAKs and repairs were refused: %d unsealed, %d forged, %d replayed, %d sealed", st.Unsealed, st.Forged, st.Replayed, st.Sealed)
			}
			routertest.Fence(t, sub, "A", routertest.Record(t, c, "fence-.*"))
			if len(got) != 0 {
				t.Errorf("%d events more than were emitted", len(got))
			}
		})
	}
}

// TestNetLossBounded: the receiving host hears nothing for a while (the
// filter drops everything), then everything again. What the sender sent
// meanwhile is far more than its history holds: the receiver is told so,
// skips it, counts it, and delivers what follows, in order; the history
// stays within its bound.
func TestNetLossBounded(t *testing.T) {
	const history = 64 << 10
	pub, sub, hosts := lossyHosts(t, 0, fmt.Sprintf(`"history": %d, "gaptimeout": "1h",`, history))
	c := sub.Dial(t, "A")
	var got []int
	rec := make(chan int, 8192)
	c.On("n", func(m bus.Message) {
		var i int
		if err := m.Decode(&i); err != nil {
			t.Error(err)
		}
		rec <- i
	})
	p := pub.Dial(t, "A")
	emit := func(from, to int) {
		for i := from; i < to; i++ {
			if err := p.Emit("n", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	collect := func(last int) func() bool {
		return func() bool {
			for {
				select {
				case i := <-rec:
					if len(got) > 0 && i <= got[len(got)-1] {
						t.Fatalf("event %d after %d", i, got[len(got)-1])
					}
					got = append(got, i)
				default:
					return len(got) > 0 && got[len(got)-1] == last
				}
			}
		}
	}
	emit(0, 10)
	routertest.WaitFor(t, "the events before the loss", collect(9))
	if err := hosts[1].Run("nft", "add", "rule", "inet", "lossy", "in", "udp", "sport", "!=", "0", "drop"); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 1000)
	for i := range 500 {
		if err := p.Emit("pad", fmt.Sprint(i, pad)); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the sender to send it all", func() bool { return pub.NetStats().Link.MessagesSent >= 510 })
	if err := hosts[1].Run("nft", "flush", "chain", "inet", "lossy", "in"); err != nil {
		t.Fatal(err)
	}
	emit(10, 20)
	routertest.WaitFor(t, "the events after the loss", collect(19))
	st, ps := sub.NetStats().Link, pub.NetStats().Link
	t.Logf("receiver: %d lost, held at most %d bytes; sender: history %d bytes, %d sequence numbers unavailable", st.Lost, st.HeldPeak, ps.HistoryBytes, ps.Unavailable)
	if st.Lost == 0 || ps.Unavailable == 0 || ps.HistoryBytes > history || st.HeldBytes != 0 {
		t.Errorf("receiver %+v\nsender %+v", st, ps)
	}
	if len(got) != 20 {
		t.Errorf("got events %v; want 0 to 19, none lost: the loss hit only padding", got)
	}
}

// TestNetReloadKeepsRepair reloads the sending server with a new
// gaptimeout (a new link) and a smaller history (in place): the report
// names both, the history shrinks to its new bound, and the receiver
// sees the sender's numbering go on with nothing lost and nothing
// delivered twice.
func TestNetReloadKeepsRepair(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {}}`)
	waitPeers(t, s1, s2)
	c2 := s2.Dial(t, "A")
	rec := routertest.Record(t, c2, "n")
	a1 := s1.Dial(t, "A")
	for i := range 50 {
		if err := a1.Emit("n", strings.Repeat("x", 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitCount(t, "n", 50)
	// The history holds them until the receiver reports them, then
	// frees them.
	if l := s1.NetStats().Link; l.HistoryBytes < 50000 && l.HistoryReleased == 0 {
		t.Fatalf("the history holds %d bytes after 50 events of 1 KB, and freed none", l.HistoryBytes)
	}
	rep, err := s1.Reload(s1.ParseConfig(t, netMembers(port, "t", `"history": 4096, "gaptimeout": "3s", "channels": {"A": {"propagatetonet": true}}`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"history", "gaptimeout"} {
		if !slices.Contains(rep.Settings, key) {
			t.Errorf("the reload report's settings %v lack %s", rep.Settings, key)
		}
	}
	for i := range 50 {
		if err := a1.Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitCount(t, "n", 100)
	if h := s1.NetStats().Link.HistoryBytes; h > 4096 {
		t.Errorf("the history holds %d bytes, its new bound is 4096", h)
	}
	st := s2.NetStats().Link
	if st.Lost != 0 || st.Late != 0 {
		t.Errorf("the receiver lost %d datagrams and had %d late ones across the sender's reload", st.Lost, st.Late)
	}
	routertest.Fence(t, s2, "A", routertest.Record(t, c2, "fence-.*"))
	if n := rec.Count("n"); n != 100 {
		t.Errorf("heard %d events, want 100", n)
	}
}

// TestNetJoinStartsNow: a server that joins after a peer has sent for a
// while hears what the peer sends from then on, and neither asks for
// what came before nor counts it as lost.
func TestNetJoinStartsNow(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	a1 := s1.Dial(t, "A")
	for i := range 100 {
		if err := a1.Emit("before", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the first events to be sent", func() bool { return s1.NetStats().Link.MessagesSent == 100 })
	s2 := netServer(t, port, "t", `"channels": {"A": {}}`)
	waitPeers(t, s1, s2)
	rec := routertest.Record(t, s2.Dial(t, "A"), ".*")
	for i := range 10 {
		if err := a1.Emit("after", i); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitCount(t, "after", 10)
	if n := rec.Count("before"); n != 0 {
		t.Errorf("the new server delivered %d events sent before it joined", n)
	}
	st, st1 := s2.NetStats().Link, s1.NetStats().Link
	if st.Lost != 0 || st.NAKsSent != 0 || st.Gaps != 0 || st1.NAKsReceived != 0 {
		t.Errorf("joining: %d lost, %d NAKs sent, %d gaps; the sender got %d NAKs", st.Lost, st.NAKsSent, st.Gaps, st1.NAKsReceived)
	}
}
