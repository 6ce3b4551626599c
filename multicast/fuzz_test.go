package multicast

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/seeds"
)

// fuzzCorpusDir holds raw inputs for the fuzz targets, one per file:
// datagrams for FuzzDecode and, in files named stream-*, datagrams each
// preceded by a 2-byte big-endian length for FuzzReassemble.
const fuzzCorpusDir = "../testdata/fuzz/datagram"

// fuzzMaxMessage is the message limit under fuzzing: small, so that the
// fuzzer reaches it.
const fuzzMaxMessage = 8192

func corpus(f *testing.F) (datagrams, streams [][]byte) {
	for _, v := range loadVectors(f) {
		datagrams = append(datagrams, v.Bytes)
	}
	for _, s := range seeds.Load(f, fuzzCorpusDir) {
		if strings.HasPrefix(s.Name, "stream-") {
			streams = append(streams, s.Data)
		} else {
			datagrams = append(datagrams, s.Data)
		}
	}
	return datagrams, streams
}

// FuzzDecode checks that the decoder never panics, and that what it
// accepts encodes back to exactly the same bytes: the format has one
// encoding per datagram.
func FuzzDecode(f *testing.F) {
	datagrams, _ := corpus(f)
	for _, d := range datagrams {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.Kind.Stream() == 1 {
			fuzzControl(t, b, &h, rest)
			return
		}
		recs, err := ParseRecords(nil, &h, rest, fuzzMaxMessage)
		if err != nil {
			return
		}
		again := AppendHeader(nil, &h)
		for _, r := range recs {
			if r.Total > fuzzMaxMessage || r.Index >= r.Count || len(r.Payload) == 0 {
				t.Fatalf("accepted an absurd record %+v", r)
			}
			again = AppendRecord(again, &r)
			if h.Kind == KindHeartbeat && r.Count == 1 {
				if hb, err := ParseHeartbeat(r.Payload); err == nil {
					// Up to the channels, its encoding is a prefix of the
					// payload; the byte after them, if any, is the flags,
					// of which it keeps bit 0 alone.
					fields := hb
					fields.Leaving = false
					enc := AppendHeartbeat(nil, &fields)
					if !bytes.HasPrefix(r.Payload, enc) {
						t.Fatalf("heartbeat %+v encodes to %x, not a prefix of %x", hb, enc, r.Payload)
					}
					if leaving := len(r.Payload) > len(enc) && r.Payload[len(enc)]&1 != 0; hb.Leaving != leaving {
						t.Fatalf("heartbeat %x decodes as leaving %v", r.Payload, hb.Leaving)
					}
				}
			}
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded and encoded again:\n%x\nwant\n%x", again, b)
		}
	})
}

// fuzzControl checks a NAK, repair or status the way FuzzDecode checks data: what
// decodes encodes back to the same bytes.
func fuzzControl(t *testing.T, b []byte, h *Header, rest []byte) {
	again := AppendHeader(nil, h)
	switch h.Kind {
	case KindNAK:
		target, ranges, err := ParseNAK(nil, h, rest)
		if err != nil {
			return
		}
		for _, r := range ranges {
			if r.First == 0 || r.First > r.Last {
				t.Fatalf("accepted the range %v", r)
			}
		}
		again = AppendNAK(again, target, ranges)
	case KindRepair:
		entries, err := ParseRepair(nil, h, rest)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Datagram != nil {
				again = AppendRepairDatagram(again, e.Datagram)
			} else {
				again = AppendRepairGone(again, e.Gone)
			}
		}
	case KindStatus:
		entries, err := ParseStatus(nil, h, rest)
		if err != nil {
			return
		}
		again = AppendStatus(again, entries)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("decoded and encoded again:\n%x\nwant\n%x", again, b)
	}
}

// FuzzReassemble feeds a stream of datagrams to a reassembler with a
// small budget and checks that it stays within it, that its accounting
// adds up, and that every message it completes has the declared length.
func FuzzReassemble(f *testing.F) {
	_, streams := corpus(f)
	for _, s := range streams {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		const budget = 16 << 10
		ra := newReassembler(budget, time.Second)
		now := time.Unix(1000, 0)
		var recs []Record
		for len(stream) >= 2 {
			n := int(binary.BigEndian.Uint16(stream))
			stream = stream[2:]
			if n > len(stream) {
				n = len(stream)
			}
			d := stream[:n]
			stream = stream[n:]
			now = now.Add(100 * time.Millisecond)
			ra.expire(now)
			h, rest, err := ParseHeader(d)
			if err != nil {
				continue
			}
			recs, err = ParseRecords(recs[:0], &h, rest, fuzzMaxMessage)
			if err != nil {
				continue
			}
			for i := range recs {
				msg, res := ra.add(h.Node, &recs[i], now)
				if res == fragComplete && len(msg) != recs[i].Total {
					t.Fatalf("completed a message of %d bytes, declared %d", len(msg), recs[i].Total)
				}
			}
			sum := 0
			for _, p := range ra.msgs {
				sum += p.cost
			}
			if ra.bytes != sum || ra.bytes > budget || ra.order.Len() != len(ra.msgs) {
				t.Fatalf("holds %d bytes (sum of costs %d, budget %d), %d in order, %d in the map", ra.bytes, sum, budget, ra.order.Len(), len(ra.msgs))
			}
		}
		ra.expire(now.Add(time.Hour))
		if ra.bytes != 0 || ra.pending() != 0 {
			t.Fatalf("after expiry: %d bytes in %d messages", ra.bytes, ra.pending())
		}
	})
}

// TestWriteStreamSeeds checks the stream seeds exist; with
// NETCLUSTER_WRITE_SEEDS=1 it writes them.
func TestWriteStreamSeeds(t *testing.T) {
	node := uuid.MustParse("6e6f6465-0000-4000-8000-000000000001")
	id := uuid.MustParse("65766e74-0000-4000-8000-000000000001")
	msg := bytes.Repeat([]byte("fragmented message "), 200)
	var inOrder, shuffled []byte
	var dgrams [][]byte
	for i, r := range split(id, msg, 1000) {
		h := Header{Kind: KindData, Records: 1, Node: node, Seq: uint64(i + 1)}
		dgrams = append(dgrams, AppendRecord(AppendHeader(nil, &h), &r))
	}
	frame := func(dst, d []byte) []byte { return append(binary.BigEndian.AppendUint16(dst, uint16(len(d))), d...) }
	for _, d := range dgrams {
		inOrder = frame(inOrder, d)
	}
	for i := len(dgrams) - 1; i >= 0; i-- {
		shuffled = frame(shuffled, dgrams[i])
		shuffled = frame(shuffled, dgrams[i]) // and each twice
	}
	seeds := map[string][]byte{"stream-in-order": inOrder, "stream-reversed-twice": shuffled}
	for name, want := range seeds {
		path := filepath.Join(fuzzCorpusDir, name)
		if os.Getenv("NETCLUSTER_WRITE_SEEDS") == "1" {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("seed %s is missing or stale (%v); run with NETCLUSTER_WRITE_SEEDS=1", name, err)
		}
	}
}
