package multicast

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestLargestNAKFitsPayload holds the orderer's bound on the ranges of a
// NAK to the configured payload: the largest NAK it can ask for, sealed
// or not, is no longer than Config.Payload.
func TestLargestNAKFitsPayload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload int
		key     string
	}{
		{"default", 0, ""},
		{"default sealed", 0, "secret"},
		{"smallest sealed", MinPayload, "secret"},
		{"odd sealed", 1001, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Group: netip.MustParseAddr("239.255.77.77"), Port: 4454, Node: uuid.New(), Cluster: "lab", Payload: tc.payload, Key: []byte(tc.key)}
			if err := cfg.defaults(); err != nil {
				t.Fatal(err)
			}
			var sealer *Sealer
			if tc.key != "" {
				var err error
				if sealer, err = NewSealer(cfg.Key, cfg.Cluster); err != nil {
					t.Fatal(err)
				}
				cfg.Key = nil // as Open does
			}
			l := newLink(cfg, NewNode(cfg.Node, 0), nil, sealer, nil)
			h := Header{Kind: KindNAK, Records: l.ord.maxRanges, Cluster: l.cluster, Node: cfg.Node, Seq: 1}
			d := AppendNAK(AppendHeader(nil, &h), uuid.New(), make([]SeqRange, l.ord.maxRanges))
			if sealer != nil {
				var err error
				if d, err = sealer.Seal(nil, d); err != nil {
					t.Fatal(err)
				}
			}
			if len(d) > cfg.Payload {
				t.Errorf("a NAK of %d ranges is %d bytes, the payload %d", l.ord.maxRanges, len(d), cfg.Payload)
			}
		})
	}
}

// TestRepairOfFullDatagramFits holds the payload bound to what a repair
// carries: for every payload the config takes, sealed or not, a NAK for
// a full datagram that the history holds is answered with the datagram,
// in a repair no longer than MaxDatagram. A payload above MaxDatagram
// less a repair's 40 bytes was taken before, and its full datagrams were
// answered "gone".
func TestRepairOfFullDatagramFits(t *testing.T) {
	const bound = MaxDatagram - repairOverhead
	for _, key := range []string{"", "secret"} {
		for _, payload := range []int{DefaultPayload, bound, bound + 1, MaxDatagram} {
			set := func(c *Config) { c.Payload, c.Key = payload, []byte(key) }
			cfg := Config{Group: netip.MustParseAddr("239.255.77.77"), Port: 4454, Cluster: "lab", Node: uuid.New()}
			set(&cfg)
			if err := cfg.defaults(); err != nil {
				if payload <= bound {
					t.Errorf("payload %d, key %q: %v", payload, key, err)
				}
				continue
			}
			l, c := configuredLink(t, NewNode(uuid.New(), 8<<20), set)
			q, buf := queue(KindData, []uuid.UUID{uuid.New()}, bytes.Repeat([]byte{'x'}, 3*payload))
			newPacker(l).pack(q, buf)
			if len(c.written) < 2 || len(c.written[0]) != l.payload {
				t.Fatalf("payload %d, key %q: %d datagrams written, not led by a full one", payload, key, len(c.written))
			}
			l.answerNAK([]SeqRange{{1, 1}}, time.Now())
			items := l.ctl.take()
			if len(items) != 1 || items[0].kind != KindRepair {
				t.Fatalf("payload %d, key %q: queued %+v, want one repair", payload, key, items)
			}
			h := Header{Kind: KindRepair, Records: items[0].records}
			entries, err := ParseRepair(nil, &h, items[0].body)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || !bytes.Equal(entries[0].Datagram, c.written[0]) {
				t.Errorf("payload %d, key %q: datagram 1 of %d bytes, in the history, answered %+v (unavailable %d)",
					payload, key, len(c.written[0]), entries, l.counts.unavailable.Load())
			}
			if n := HeaderLen + len(items[0].body) + sealRoom([]byte(key)); n > MaxDatagram {
				t.Errorf("payload %d, key %q: a repair of %d bytes", payload, key, n)
			}
		}
	}
}
