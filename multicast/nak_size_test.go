package multicast

import (
	"net/netip"
	"testing"

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
