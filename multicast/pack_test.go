package multicast

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// captureSocket keeps what the writer writes.
type captureSocket struct {
	socket
	written [][]byte
}

func (c *captureSocket) writeBatch(dgs [][]byte) (int, error) {
	for _, d := range dgs {
		c.written = append(c.written, bytes.Clone(d))
	}
	return len(dgs), nil
}

// packerLink is a link with no socket of its own, enough for a packer.
func packerLink(node uuid.UUID, lastSeq uint64) (*Link, *captureSocket) {
	c := &captureSocket{}
	l := &Link{
		cfg:     Config{Payload: DefaultPayload, Node: node, MaxMessage: 1 << 20},
		payload: DefaultPayload,
		log:     slog.New(slog.DiscardHandler),
		cluster: ClusterIDOf("lab"),
		sock:    c,
		seq:     new(atomic.Uint64),
		counts:  new(counters),
		stop:    make(chan struct{}),
		ctlSeq:  new(atomic.Uint64),
		hist:    NewHistory(1 << 20),
		rx: &rx{
			ra:  newReassembler(1<<20, 0),
			ord: newOrderer(nil, DefaultHoldPeer, DefaultHoldTotal, DefaultGapTimeout, defaultNAKDelay, 8),
		},
	}
	l.seq.Store(lastSeq)
	return l, c
}

// configuredLink is a link made by newLink from a config as Open takes
// it, after mut changes it, with a capturing socket and no goroutines:
// the link of node in cluster "lab".
func configuredLink(t *testing.T, node *Node, mut func(*Config)) (*Link, *captureSocket) {
	t.Helper()
	cfg := Config{Group: netip.MustParseAddr("239.255.77.77"), Port: 4454, Cluster: "lab", Node: node.ID()}
	if mut != nil {
		mut(&cfg)
	}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	var sealer *Sealer
	if len(cfg.Key) > 0 {
		s, err := NewSealer(cfg.Key, cfg.Cluster)
		if err != nil {
			t.Fatal(err)
		}
		sealer = s
		cfg.Key = nil // as Open does
	}
	l := newLink(cfg, node, &net.Interface{Name: "none"}, sealer, func(uuid.UUID, []byte) {})
	c := &captureSocket{}
	l.sock = c
	return l, c
}

// queue lays messages out as the send queue holds them.
func queue(kind Kind, ids []uuid.UUID, msgs ...[]byte) ([]queued, []byte) {
	var q []queued
	var buf []byte
	for i, m := range msgs {
		q = append(q, queued{kind: kind, id: ids[i], off: len(buf), n: len(m)})
		buf = append(buf, m...)
	}
	return q, buf
}

// TestPackerWritesTheTwoRecordVector packs the two messages of the
// vector data-two-records, queued together, and must produce its bytes.
func TestPackerWritesTheTwoRecordVector(t *testing.T) {
	var v vector
	for _, x := range loadVectors(t) {
		if x.Name == "data-two-records" {
			v = x
		}
	}
	if v.Header == nil {
		t.Fatal("no vector data-two-records")
	}
	l, c := packerLink(uuid.MustParse(v.Header.Node), v.Header.Seq-1)
	var ids []uuid.UUID
	var msgs [][]byte
	for _, r := range v.Records {
		ids = append(ids, uuid.MustParse(r.ID))
		b, err := hex.DecodeString(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	q, buf := queue(KindData, ids, msgs...)
	newPacker(l).pack(q, buf)
	if len(c.written) != 1 {
		t.Fatalf("wrote %d datagrams, want 1", len(c.written))
	}
	if !bytes.Equal(c.written[0], v.Bytes) {
		t.Errorf("wrote\n%x\nwant\n%x", c.written[0], v.Bytes)
	}
	if s := l.Stats(); s.MessagesSent != 2 || s.DatagramsSent != 1 {
		t.Errorf("counted %d messages in %d datagrams, want 2 in 1", s.MessagesSent, s.DatagramsSent)
	}
}

// TestPackerLayout checks where records go: whole messages share a
// datagram up to the payload and 255 records, fragments fill theirs, the
// last fragment shares its datagram with what follows, a heartbeat never
// shares one with data, and sequence numbers run on by one.
func TestPackerLayout(t *testing.T) {
	per := DefaultPayload - Overhead // 1336
	tests := []struct {
		name  string
		kinds []Kind
		sizes []int
		want  [][]int // per datagram, the payload length of each record
		// payload, when not 0, is the datagram size in place of the
		// default.
		payload int
	}{
		{"one", []Kind{KindData}, []int{10}, [][]int{{10}}, 0},
		{"fragments then small", []Kind{KindData, KindData}, []int{2*per + 300, 20},
			[][]int{{per}, {per}, {300, 20}}, 0},
		{"full datagram", []Kind{KindData, KindData, KindData}, []int{600, 600, 100},
			[][]int{{600, 600}, {100}}, 0}, // 38 + 2*626 = 1290; 100 more needs 126
		{"exactly full", []Kind{KindData, KindData}, []int{per - 26 - 300, 300},
			[][]int{{per - 326, 300}}, 0},
		{"heartbeat apart", []Kind{KindData, KindHeartbeat, KindData}, []int{20, 30, 20},
			[][]int{{20}, {30}, {20}}, 0},
		{"255 records", make([]Kind, 256), make([]int, 256), nil, 9000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil { // 256 one-byte messages
				for i := range tc.kinds {
					tc.kinds[i], tc.sizes[i] = KindData, 1
				}
				first := make([]int, 255)
				for i := range first {
					first[i] = 1
				}
				tc.want = [][]int{first, {1}}
			}
			l, c := packerLink(uuid.New(), 41)
			if tc.payload != 0 {
				l.cfg.Payload = tc.payload
				l.payload = tc.payload
			}
			var q []queued
			var buf []byte
			for i, n := range tc.sizes {
				m := bytes.Repeat([]byte{byte(i)}, n)
				if tc.kinds[i] == KindHeartbeat {
					m = AppendHeartbeat(nil, &Heartbeat{PID: 1, Host: "h"})
					m = append(m, make([]byte, n-len(m))...)
				}
				q = append(q, queued{kind: tc.kinds[i], id: uuid.New(), off: len(buf), n: len(m)})
				buf = append(buf, m...)
			}
			newPacker(l).pack(q, buf)
			if len(c.written) != len(tc.want) {
				t.Fatalf("wrote %d datagrams, want %d", len(c.written), len(tc.want))
			}
			for i, d := range c.written {
				h, recs := parseWritten(t, l, i, d)
				if h.Seq != uint64(42+i) {
					t.Errorf("datagram %d has sequence number %d, want %d", i, h.Seq, 42+i)
				}
				var got []int
				for _, r := range recs {
					got = append(got, len(r.Payload))
				}
				if !equalInts(got, tc.want[i]) {
					t.Errorf("datagram %d holds records of %v bytes, want %v", i, got, tc.want[i])
				}
				if h.Kind == KindHeartbeat {
					hb, err := ParseHeartbeat(recs[0].Payload)
					if err != nil || hb.LastSeq != h.Seq-1 {
						t.Errorf("the heartbeat in datagram %d says the last datagram was %d, want %d (%v)", i, hb.LastSeq, h.Seq-1, err)
					}
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzPack packs messages of sizes the fuzzer picks (one byte each, in
// units of 97 bytes, so that fragments and packed records mix) into
// datagrams of a payload it picks, and checks that every datagram
// decodes, fits the payload, is numbered in order, and that reading them
// back gives every message, whole and in order.
func FuzzPack(f *testing.F) {
	f.Add(uint16(0), []byte{1, 2, 3})
	f.Add(uint16(1400-MinPayload), []byte{200, 0, 1, 255, 14})
	f.Add(uint16(9000), []byte{255, 255, 255, 1})
	f.Fuzz(func(t *testing.T, payload uint16, sizes []byte) {
		if len(sizes) > 300 {
			sizes = sizes[:300]
		}
		l, c := packerLink(uuid.New(), 0)
		l.cfg.Payload = MinPayload + int(payload)%(MaxPayload-MinPayload+1)
		l.payload = l.cfg.Payload
		var q []queued
		var buf []byte
		var want [][]byte
		for i, s := range sizes {
			m := make([]byte, 1+int(s)*97)
			for j := range m {
				m[j] = byte(i + j)
			}
			want = append(want, m)
			q = append(q, queued{kind: KindData, id: uuid.New(), off: len(buf), n: len(m)})
			buf = append(buf, m...)
		}
		newPacker(l).pack(q, buf)
		ra := newReassembler(1<<30, time.Hour)
		var got [][]byte
		for i, d := range c.written {
			h, recs := parseWritten(t, l, i, d)
			if h.Seq != uint64(i+1) {
				t.Fatalf("datagram %d has sequence number %d", i, h.Seq)
			}
			for _, r := range recs {
				if msg, res := ra.add(h.Node, &r, time.Time{}); res == fragComplete {
					got = append(got, bytes.Clone(msg))
				} else if res != fragPending {
					t.Fatalf("datagram %d: fragment %d/%d refused: %v", i, r.Index, r.Count, res)
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("read back %d messages, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
		if s := l.Stats(); s.MessagesSent != uint64(len(want)) || s.DatagramsSent != uint64(len(c.written)) {
			t.Errorf("counted %d messages in %d datagrams, want %d in %d", s.MessagesSent, s.DatagramsSent, len(want), len(c.written))
		}
	})
}

// parseWritten decodes datagram i that l wrote, checking its size.
func parseWritten(t *testing.T, l *Link, i int, d []byte) (Header, []Record) {
	t.Helper()
	if len(d) > l.cfg.Payload {
		t.Fatalf("datagram %d has %d bytes, over the payload %d", i, len(d), l.cfg.Payload)
	}
	h, rest, err := ParseHeader(d)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseRecords(nil, &h, rest, 1<<20)
	if err != nil {
		t.Fatalf("datagram %d: %v", i, err)
	}
	return h, recs
}
