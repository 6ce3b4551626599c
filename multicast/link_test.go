package multicast_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
)

func TestLinkExchangesMessagesBothWays(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	b := openLink(t, config(port))
	if err := a.Send(uuid.New(), []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(uuid.New(), []byte("from b")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to hear a", func() bool { return len(b.in.all()) == 1 })
	waitFor(t, "a to hear b", func() bool { return len(a.in.all()) == 1 })
	if got := string(b.in.all()[0]); got != "from a" {
		t.Errorf("b heard %q, want %q", got, "from a")
	}
	if got := string(a.in.all()[0]); got != "from b" {
		t.Errorf("a heard %q, want %q", got, "from b")
	}
	if b.in.from[0] != a.cfg.Node {
		t.Errorf("b heard it from %v, want a's node %v", b.in.from[0], a.cfg.Node)
	}
	// Each hears its own datagrams through multicast loopback, and drops
	// them by node id: on Linux in the kernel, with a socket filter,
	// elsewhere in the read loop.
	if runtime.GOOS == "linux" {
		if s := a.Stats(); s.Own != 0 {
			t.Errorf("a read %d of its own datagrams; the socket filter should drop them", s.Own)
		}
	} else {
		waitFor(t, "a to ignore its own datagrams", func() bool { return a.Stats().Own > 0 })
	}
	// The sender counts a datagram once its write has returned, which
	// may be after b has read it.
	waitFor(t, "a to count its message sent", func() bool { return a.Stats().MessagesSent == 1 })
	if s := a.Stats(); s.MessagesSent != 1 || s.Delivered != 1 || s.Dropped() != 0 {
		t.Errorf("a's stats: %+v", s)
	}
}

func TestLinkFragmentsLargeMessages(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	b := openLink(t, config(port))
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	for _, n := range []int{1, multicast.DefaultPayload - multicast.Overhead, multicast.DefaultPayload - multicast.Overhead + 1, len(big)} {
		if err := a.Send(uuid.New(), big[:n]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "4 messages", func() bool { return len(b.in.all()) == 4 })
	for i, n := range []int{1, multicast.DefaultPayload - multicast.Overhead, multicast.DefaultPayload - multicast.Overhead + 1, len(big)} {
		if got := b.in.all()[i]; !bytes.Equal(got, big[:n]) {
			t.Errorf("message %d: got %d bytes, want the %d sent", i, len(got), n)
		}
	}
	if s := b.Stats(); s.ReassemblyBytes != 0 || s.Incomplete != 0 {
		t.Errorf("reassembly still holds %d bytes in %d messages", s.ReassemblyBytes, s.Incomplete)
	}
	if err := a.Send(uuid.New(), make([]byte, 1<<20+1)); !errors.Is(err, multicast.ErrTooBig) {
		t.Errorf("sending 1 MiB + 1: got %v, want ErrTooBig", err)
	}
}

func TestLinkIgnoresOtherClusters(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	otherCfg := config(port)
	otherCfg.Cluster = "other"
	other := openLink(t, otherCfg)
	b := openLink(t, config(port))
	for i := range 3 {
		if err := a.Send(uuid.New(), fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b to hear a", func() bool { return len(b.in.all()) == 3 })
	waitFor(t, "the other cluster to see a's datagrams", func() bool { return other.Stats().OtherCluster >= 3 })
	if got := other.in.all(); len(got) != 0 {
		t.Errorf("a node of another cluster delivered %q", got)
	}
	if p := other.Peers(); len(p) != 0 {
		t.Errorf("a node of another cluster lists peers %v", p)
	}
}

// TestLinkLeavesIDsToItsCaller: the link delivers every datagram of a
// sender once, by its sequence number, but does not drop messages by
// id: a sender that sends one id three times has it delivered three
// times, and the caller that runs several links (router.Server) drops
// duplicate ids across them.
func TestLinkLeavesIDsToItsCaller(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	b := openLink(t, config(port))
	id := uuid.New()
	for range 3 {
		if err := a.Send(id, []byte("thrice")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(uuid.New(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message after", func() bool { return len(b.in.all()) == 4 })
	if got := b.Stats().Duplicates; got != 0 {
		t.Errorf("duplicates = %d, want 0", got)
	}
}

func TestPeersAppearAndAgeOut(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfgA := config(port)
	a := openLink(t, cfgA)
	cfgB := config(port)
	cfgB.Channels = func() []string { return []string{"A", "B"} }
	b := openLink(t, cfgB)
	waitFor(t, "a to list b", func() bool { return len(a.Peers()) == 1 })
	p := a.Peers()[0]
	host, _ := os.Hostname()
	if p.Node != cfgB.Node || p.PID != os.Getpid() || p.Host != host || p.Version != "test" || !slices.Equal(p.Channels, []string{"A", "B"}) {
		t.Errorf("a lists %+v", p)
	}
	if !p.Addr.Addr().Is4() {
		t.Errorf("peer address %v", p.Addr)
	}
	b.Close()
	waitFor(t, "a to age b out", func() bool { return len(a.Peers()) == 0 })
	// The log line follows the table's change.
	waitFor(t, "a to log that b is gone", func() bool { return strings.Contains(a.logs.String(), "peer gone") })
}

func TestDumpLogsEachDatagram(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	cfg := config(port)
	cfg.Dump = true
	b := openLink(t, cfg)
	id := uuid.New()
	if err := a.Send(id, []byte("dumped")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to hear a", func() bool { return len(b.in.all()) == 1 })
	rawSender(t, port)([]byte("nc\x07 not a datagram"))
	waitFor(t, "the bad datagram", func() bool { return b.Stats().BadVersion == 1 })
	waitFor(t, "b to dump one of its own", func() bool { return strings.Contains(b.logs.String(), "(own)") })
	logs := b.logs.String()
	for _, want := range []string{"msg=datagram", "kind=data", "node=" + a.cfg.Node.String(), id.String() + " fragment 1/1, 6 of 6 bytes", "kind=heartbeat", "(own)",
		`err="multicast: unsupported version at byte 2: version 7, this node speaks 1" head=6e6307206e6f7420612064617461677261`} {
		if !strings.Contains(logs, want) {
			t.Errorf("dump lacks %q:\n%s", want, logs)
		}
	}
}

func TestOpenRefusesBadInterfaces(t *testing.T) {
	mcasttest.Need(t)
	for _, tc := range []struct{ iface, want string }{
		{"nonesuch0", `no network interface "nonesuch0"; this host has: lo`},
		{"", "no interface is up, multicast-capable and not a loopback"},
	} {
		cfg := config(mcasttest.Port())
		cfg.Interface = tc.iface
		_, err := multicast.Open(cfg, func(uuid.UUID, []byte) {})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("interface %q: got %v, want an error containing %q", tc.iface, err, tc.want)
		}
	}
}

func TestChooseInterface(t *testing.T) {
	up := net.FlagUp | net.FlagMulticast
	all := []net.Interface{
		{Name: "lo", Flags: up | net.FlagLoopback},
		{Name: "eth0", Flags: up},
		{Name: "eth1", Flags: up},
		{Name: "down0", Flags: net.FlagMulticast},
		{Name: "tun0", Flags: net.FlagUp | net.FlagPointToPoint},
	}
	for _, tc := range []struct {
		name  string
		ifs   []net.Interface
		pick  string
		want  string
		label string
	}{
		{label: "named", ifs: all, name: "eth1", pick: "eth1"},
		{label: "loopback by name", ifs: all, name: "lo", pick: "lo"},
		{label: "missing", ifs: all, name: "eth9", want: `no network interface "eth9"; this host has: lo, eth0, eth1, down0, tun0`},
		{label: "down", ifs: all, name: "down0", want: `interface "down0" is down`},
		{label: "no multicast", ifs: all, name: "tun0", want: `interface "tun0" does not support multicast`},
		{label: "ambiguous", ifs: all, want: `2 interfaces could carry multicast (eth0, eth1); name one with "interface"`},
		{label: "single", ifs: all[:2], pick: "eth0"},
		{label: "none", ifs: all[:1], want: "no interface is up, multicast-capable and not a loopback (this host has: lo)"},
	} {
		t.Run(tc.label, func(t *testing.T) {
			got, err := multicast.ChooseFrom(tc.ifs, tc.name)
			switch {
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, %v; want an error containing %q", got, err, tc.want)
			case tc.want == "" && err != nil:
				t.Errorf("got %v", err)
			case tc.want == "" && got.Name != tc.pick:
				t.Errorf("picked %s, want %s", got.Name, tc.pick)
			}
		})
	}
}

func TestSendAfterClose(t *testing.T) {
	mcasttest.Need(t)
	a := openLink(t, config(mcasttest.Port()))
	a.Close()
	a.Close()
	if err := a.Send(uuid.New(), []byte("x")); !errors.Is(err, multicast.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
}

func TestHeartbeatWithTooManyChannelsIsTrimmed(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	cfg.MaxMessage = 1024
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("%060d", i))
	}
	cfg.Channels = func() []string { return many }
	a := openLink(t, cfg)
	b := openLink(t, config(port))
	waitFor(t, "b to list a", func() bool { return len(b.Peers()) == 1 })
	if n := len(b.Peers()[0].Channels); n == 0 || n >= 100 {
		t.Errorf("a announced %d channels; want some, fewer than 100", n)
	}
	if strings.Contains(a.logs.String(), "heartbeat failed") {
		t.Errorf("a failed to send heartbeats:\n%s", a.logs)
	}
}
