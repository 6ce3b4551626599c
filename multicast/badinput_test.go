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

// rawSender sends hand-made datagrams to the group through a plain UDP
// socket, as a broken or hostile node would.
func rawSender(t *testing.T, port int) func([]byte) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IP(group.AsSlice()), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(b []byte) {
		t.Helper()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// datagram builds a datagram of the test cluster from node with one
// record.
func datagram(node uuid.UUID, seq uint64, r multicast.Record) []byte {
	h := multicast.Header{Kind: multicast.KindData, Records: 1, Cluster: multicast.ClusterIDOf("test"), Node: node, Seq: seq}
	return multicast.AppendRecord(multicast.AppendHeader(nil, &h), &r)
}

func TestBadDatagramsAreDroppedAndCounted(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	b := openLink(t, config(port))
	send := rawSender(t, port)
	node := uuid.New()
	good := datagram(node, 1, multicast.Record{ID: uuid.New(), Count: 1, Total: 2, Payload: []byte{0x91, 0xc0}})
	set := func(i int, v byte) []byte { d := bytes.Clone(good); d[i] = v; return d }
	tests := []struct {
		name    string
		b       []byte
		counter func(multicast.Stats) uint64
	}{
		{"empty", []byte{}, func(s multicast.Stats) uint64 { return s.Truncated }},
		{"truncated header", good[:20], func(s multicast.Stats) uint64 { return s.Truncated }},
		{"truncated record", good[:len(good)-1], func(s multicast.Stats) uint64 { return s.Truncated }},
		{"wrong magic", set(0, 'x'), func(s multicast.Stats) uint64 { return s.BadMagic }},
		{"wrong version", set(2, 9), func(s multicast.Stats) uint64 { return s.BadVersion }},
		{"unknown kind", set(3, 6), func(s multicast.Stats) uint64 { return s.BadKind }},
		{"unknown flags", set(4, 0x80), func(s multicast.Stats) uint64 { return s.BadKind }},
		{"fragment count 0", set(multicast.HeaderLen+19, 0), func(s multicast.Stats) uint64 { return s.BadFragment }},
		{"absurd fragment count", set(multicast.HeaderLen+18, 0xff), func(s multicast.Stats) uint64 { return s.BadFragment }},
		{"message over the limit", set(multicast.HeaderLen+20, 0x7f), func(s multicast.Stats) uint64 { return s.BadFragment }},
		{"bytes after the records", append(bytes.Clone(good), 0), func(s multicast.Stats) uint64 { return s.Malformed }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter(b.Stats())
			send(tc.b)
			waitFor(t, "the datagram to be counted", func() bool { return tc.counter(b.Stats()) == before+1 })
		})
	}
	// The link still works, and delivered nothing bad.
	send(good)
	waitFor(t, "the good datagram", func() bool { return len(b.in.all()) == 1 })
	if got := b.in.all()[0]; !bytes.Equal(got, []byte{0x91, 0xc0}) {
		t.Errorf("delivered %x", got)
	}
	if s := b.Stats(); s.Dropped() != uint64(len(tests)) {
		t.Errorf("dropped %d, want %d: %+v", s.Dropped(), len(tests), s)
	}
}

// TestFragmentFloodStaysBounded floods a link with fragments of messages
// that never complete, and checks that reassembly memory stays under its
// bound, that the flood is counted and expires, and that a good
// fragmented message still gets through.
func TestFragmentFloodStaysBounded(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfg := config(port)
	cfg.MaxMessage = 64 << 10
	cfg.MaxReassembly = 256 << 10
	cfg.ReassemblyTimeout = 300 * time.Millisecond
	b := openLink(t, cfg)
	a := openLink(t, config(port))
	send := rawSender(t, port)
	node := uuid.New()
	const flood = 3000
	payload := make([]byte, 1000)
	for i := range flood {
		// The first of 60 fragments of a 60000-byte message, never followed.
		send(datagram(node, uint64(i+1), multicast.Record{ID: uuid.New(), Index: 0, Count: 60, Total: 60000, Payload: payload}))
		if i%500 == 0 {
			// Give the reader a chance: the point is memory, not the
			// socket buffer.
			waitFor(t, "the flood to be read", func() bool { return b.Stats().DatagramsReceived > uint64(i) })
		}
	}
	waitFor(t, "the flood to be read", func() bool { return b.Stats().DatagramsReceived >= flood })
	s := b.Stats()
	if s.ReassemblyPeak > cfg.MaxReassembly || s.ReassemblyBytes > cfg.MaxReassembly {
		t.Errorf("reassembly held %d bytes (peak %d), over the bound %d", s.ReassemblyBytes, s.ReassemblyPeak, cfg.MaxReassembly)
	}
	if s.Evicted == 0 {
		t.Errorf("no incomplete message was evicted: %+v", s)
	}
	msg := bytes.Repeat([]byte("good "), 10000)
	if err := a.Send(uuid.New(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good message", func() bool { return len(b.in.all()) == 1 })
	if !bytes.Equal(b.in.all()[0], msg) {
		t.Error("the good message arrived damaged")
	}
	waitFor(t, "the flood to expire", func() bool {
		s := b.Stats()
		return s.Incomplete == 0 && s.ReassemblyBytes == 0 && s.Expired > 0
	})
	if s := b.Stats(); s.ReassemblyPeak > cfg.MaxReassembly {
		t.Errorf("peak %d over the bound %d", s.ReassemblyPeak, cfg.MaxReassembly)
	}
	// Told as well as counted, by the heartbeat after each.
	waitFor(t, "the log of the messages dropped", func() bool {
		s, logs := b.Stats(), b.logs.String()
		return strings.Contains(logs, fmt.Sprintf("expired_total=%d evicted_total=%d", s.Expired, s.Evicted))
	})
}
