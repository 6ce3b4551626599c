package multicast_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
)

const secret = "s3cret-of-the-test-cluster"

// sealedConfig is config(port) with key.
func sealedConfig(port int, key string) multicast.Config {
	cfg := config(port)
	if key != "" {
		cfg.Key = []byte(key)
	}
	return cfg
}

// capture joins the group at port with a plain socket, as an onlooker on
// the LAN would, and returns a function that waits for the next datagram
// that match accepts.
func capture(t *testing.T, port int) func(match func([]byte) bool) []byte {
	t.Helper()
	ifi, err := net.InterfaceByName(mcasttest.Interface)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IP(group.AsSlice()), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(match func([]byte) bool) []byte {
		t.Helper()
		buf := make([]byte, multicast.MaxDatagram)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("capturing a datagram: %v", err)
			}
			if match(buf[:n]) {
				return bytes.Clone(buf[:n])
			}
		}
	}
}

// isData matches a data datagram.
func isData(b []byte) bool { return len(b) > multicast.HeaderLen && b[3] == byte(multicast.KindData) }

func send(t *testing.T, l *testLink, msg string) {
	t.Helper()
	if err := l.Send(uuid.New(), []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func TestSealedLinksHearEachOther(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	watch := capture(t, port)
	a := openLink(t, sealedConfig(port, secret))
	b := openLink(t, sealedConfig(port, secret))
	big := bytes.Repeat([]byte("sealed and fragmented "), 1000)
	send(t, a, "from a")
	if err := a.Send(uuid.New(), big); err != nil {
		t.Fatal(err)
	}
	send(t, b, "from b")
	waitFor(t, "b to hear a", func() bool { return b.in.count() == 2 })
	waitFor(t, "a to hear b", func() bool { return a.in.count() == 1 })
	if got := b.in.all(); string(got[0]) != "from a" || !bytes.Equal(got[1], big) {
		t.Errorf("b heard %q and %d bytes", got[0], len(got[1]))
	}
	waitFor(t, "each to list the other", func() bool { return len(a.Peers()) == 1 && len(b.Peers()) == 1 })
	// What goes on the wire is sealed, and no bigger than the payload.
	for range 5 {
		d := watch(func([]byte) bool { return true })
		if d[4] != multicast.FlagSealed {
			t.Fatalf("a datagram went out with flags %#02x", d[4])
		}
		if len(d) > multicast.DefaultPayload {
			t.Errorf("a sealed datagram of %d bytes, over the payload %d", len(d), multicast.DefaultPayload)
		}
		if bytes.Contains(d, []byte("from")) || bytes.Contains(d, []byte("fragmented")) {
			t.Errorf("a sealed datagram shows its message: %q", d)
		}
	}
	for _, l := range []*testLink{a, b} {
		if s := l.Stats(); s.Forged+s.Unsealed+s.Sealed+s.Replayed+s.Dropped() != 0 {
			t.Errorf("%+v", s)
		}
		if strings.Contains(l.logs.String(), secret) {
			t.Error("the key is in the log")
		}
	}
}

func TestDifferentKeysDoNotHearEachOther(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, sealedConfig(port, secret))
	b := openLink(t, sealedConfig(port, "another key"))
	c := openLink(t, sealedConfig(port, secret))
	for i := range 5 {
		send(t, a, fmt.Sprintf("m%d", i))
	}
	waitFor(t, "c to hear a", func() bool { return c.in.count() == 5 })
	waitFor(t, "b to refuse a's datagrams", func() bool { return b.Stats().Forged >= 5 })
	waitFor(t, "a to refuse b's heartbeats", func() bool { return a.Stats().Forged >= 2 })
	if n := b.in.count(); n != 0 {
		t.Errorf("b delivered %d messages sealed with another key", n)
	}
	if p := b.Peers(); len(p) != 0 {
		t.Errorf("b lists peers %v", p)
	}
	// c lists a once it hears a heartbeat of a's, which may come after
	// a's messages: a's first went out before c joined.
	waitFor(t, "c to list a", func() bool { return len(c.Peers()) > 0 })
	if p := c.Peers(); len(p) != 1 || p[0].Node != a.cfg.Node {
		t.Errorf("c lists %v, want a only", p)
	}
	// Each says so once per sender: a of b, b of a and of c.
	waitFor(t, "b to refuse c's heartbeats", func() bool { return b.Stats().Forged >= 7 })
	const says = "fails authentication: is its key different?"
	for _, c := range []struct {
		name    string
		l       *testLink
		senders []*testLink
	}{{"a", a, []*testLink{b}}, {"b", b, []*testLink{a, c}}} {
		logs := c.l.logs.String()
		if n := strings.Count(logs, says); n != len(c.senders) {
			t.Errorf("%s logged %q %d times, want %d:\n%s", c.name, says, n, len(c.senders), logs)
		}
		for _, s := range c.senders {
			if !strings.Contains(logs, "node="+s.cfg.Node.String()) {
				t.Errorf("%s does not name node %v:\n%s", c.name, s.cfg.Node, logs)
			}
		}
	}
	if strings.Contains(a.logs.String()+b.logs.String()+c.logs.String(), secret) {
		t.Error("a key is in the log")
	}
}

func TestKeyAndNoKeyDoNotHearEachOther(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	keyed := openLink(t, sealedConfig(port, secret))
	plain := openLink(t, sealedConfig(port, ""))
	for i := range 3 {
		send(t, keyed, fmt.Sprintf("sealed %d", i))
		send(t, plain, fmt.Sprintf("plain %d", i))
	}
	waitFor(t, "the plain node to drop sealed datagrams", func() bool { return plain.Stats().Sealed >= 3 })
	waitFor(t, "the keyed node to drop unsealed datagrams", func() bool { return keyed.Stats().Unsealed >= 3 })
	if n := plain.in.count() + keyed.in.count(); n != 0 {
		t.Errorf("%d messages crossed between a node with a key and one without", n)
	}
	if n := strings.Count(plain.logs.String(), "this node has no key"); n != 1 {
		t.Errorf("the node without a key says so %d times, want once:\n%s", n, plain.logs)
	}
	if n := strings.Count(keyed.logs.String(), "unsealed datagram dropped"); n != 1 {
		t.Errorf("the node with a key logs unsealed datagrams %d times, want once:\n%s", n, keyed.logs)
	}
}

// TestForgedUnsealedAndReplayedAreDropped captures a real sealed datagram
// off the group and sends it back, changed or not, as an attacker on the
// LAN could, and sends datagrams of its own, sealed with a wrong key or
// not at all.
func TestForgedUnsealedAndReplayedAreDropped(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	watch := capture(t, port)
	a := openLink(t, sealedConfig(port, secret))
	b := openLink(t, sealedConfig(port, secret))
	inject := rawSender(t, port)
	send(t, a, "genuine")
	genuine := watch(isData)
	waitFor(t, "b to hear a", func() bool { return b.in.count() == 1 })

	flip := func(i int) []byte { d := bytes.Clone(genuine); d[i] ^= 0x40; return d }
	wrongKey := func() []byte {
		s, err := multicast.NewSealer([]byte("not the key"), "test")
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.Seal(nil, datagram(uuid.New(), 1, multicast.Record{ID: uuid.New(), Count: 1, Total: 2, Payload: []byte{0x91, 0xc0}}))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	stolenNode := func() []byte {
		// a's node id, with a fresh sequence number, and the right body
		// sealed with a wrong key.
		s, _ := multicast.NewSealer([]byte("not the key"), "test")
		d, _ := s.Seal(nil, datagram(a.cfg.Node, 1<<40, multicast.Record{ID: uuid.New(), Count: 1, Total: 2, Payload: []byte{0x91, 0xc0}}))
		return d
	}
	tests := []struct {
		name    string
		b       []byte
		counter func(multicast.Stats) uint64
	}{
		{"replayed as captured", genuine, func(s multicast.Stats) uint64 { return s.Replayed }},
		{"replayed again", genuine, func(s multicast.Stats) uint64 { return s.Replayed }},
		{"a flipped bit in the body", flip(multicast.HeaderLen + 2), func(s multicast.Stats) uint64 { return s.Forged }},
		{"a flipped bit in the tag", flip(len(genuine) - 1), func(s multicast.Stats) uint64 { return s.Forged }},
		{"a new sequence number", flip(multicast.HeaderLen - 8), func(s multicast.Stats) uint64 { return s.Forged }},
		{"sealed with a wrong key", wrongKey(), func(s multicast.Stats) uint64 { return s.Forged }},
		{"a's node id with a wrong key", stolenNode(), func(s multicast.Stats) uint64 { return s.Forged }},
		{"unsealed", datagram(uuid.New(), 1, multicast.Record{ID: uuid.New(), Count: 1, Total: 2, Payload: []byte{0x91, 0xc0}}), func(s multicast.Stats) uint64 { return s.Unsealed }},
		{"the flag cleared", func() []byte { d := bytes.Clone(genuine); d[4] = 0; return d }(), func(s multicast.Stats) uint64 { return s.Unsealed }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter(b.Stats())
			inject(tc.b)
			waitFor(t, "the datagram to be counted", func() bool { return tc.counter(b.Stats()) == before+1 })
		})
	}
	// Nothing of it was delivered, and the link still works.
	send(t, a, "after")
	waitFor(t, "the message after", func() bool { return b.in.count() == 2 })
	if got := b.in.all(); string(got[0]) != "genuine" || string(got[1]) != "after" {
		t.Errorf("b delivered %q", got)
	}
	if s := b.Stats(); s.Dropped() != 0 || s.Duplicates != 0 {
		t.Errorf("the attack reached the decoder: %+v", s)
	}
	// The heartbeats a kept sending were not taken for replays.
	if s := b.Stats(); s.Replayed != 2 {
		t.Errorf("replayed = %d, want 2", s.Replayed)
	}
}

func TestSealedDumpShowsNoKey(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := sealedConfig(port, secret)
	cfg.Dump = true
	a := openLink(t, cfg)
	b := openLink(t, sealedConfig(port, "another key"))
	send(t, a, "dumped")
	send(t, b, "refused")
	waitFor(t, "a to dump b's refused datagram", func() bool { return strings.Contains(a.logs.String(), "fails authentication") })
	waitFor(t, "a to dump its own datagram", func() bool { return a.Stats().Own > 0 })
	if strings.Contains(a.logs.String(), secret) || strings.Contains(b.logs.String(), "another key") {
		t.Error("a key is in the log")
	}
}
