package multicast

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fuzzLink is a link with no socket, whose handle a fuzz target drives:
// node 1 of the vectors, in cluster "lab", with small bounds. It keeps
// what it delivers nowhere.
func fuzzLink() *Link {
	const holdPeer, holdTotal = 8 << 10, 12 << 10
	l := &Link{
		cfg: Config{Payload: DefaultPayload, Node: uuid.MustParse("6e6f6465-0000-4000-8000-000000000001"),
			MaxMessage: fuzzMaxMessage, PeerTimeout: time.Second, HoldPeer: holdPeer, HoldTotal: holdTotal},
		log:     slog.New(slog.DiscardHandler),
		payload: DefaultPayload,
		cluster: ClusterIDOf("lab"),
		sock:    &captureSocket{},
		seq:     new(atomic.Uint64),
		counts:  new(counters),
		ctlSeq:  new(atomic.Uint64),
		stop:    make(chan struct{}),
		rx: &rx{
			ra:    newReassembler(16<<10, time.Second),
			peers: peerTable{peers: make(map[uuid.UUID]*Peer)},
		},
		hist:    NewHistory(4 << 10),
		kick:    make(chan struct{}, 1),
		bucket:  repairBucket{rate: 1 << 20, burst: 1 << 16},
		sealing: sealState{replay: newReplayGuard(), logged: make(map[forgedFrom]struct{})},
	}
	l.q.wake = make(chan struct{}, 1)
	l.inTurn = l.handleInTurn
	l.ord = newOrderer(l.inTurn, holdPeer, holdTotal, time.Second, defaultNAKDelay, 8)
	l.deliver = func(uuid.UUID, []byte) {}
	return l
}

// FuzzHandle feeds a link a stream of datagrams (data, heartbeats, NAKs,
// repairs, garbage), with timer runs between them, as its read loop and
// housekeeping would: it must never panic, never process a datagram of a
// peer twice, never pass its hold bounds, and once every peer has fallen
// silent, hold nothing. Its own history
// answers the NAKs addressed to it.
func FuzzHandle(f *testing.F) {
	vs := loadVectors(f)
	frame := func(dst, d []byte) []byte { return append(binary.BigEndian.AppendUint16(dst, uint16(len(d))), d...) }
	var all []byte
	for _, v := range vs {
		if !isInvalid(v.Name) {
			all = frame(all, v.Bytes)
			f.Add(frame(nil, v.Bytes))
		}
	}
	f.Add(all)
	files, _ := filepath.Glob(filepath.Join(fuzzCorpusDir, "stream-*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		l := fuzzLink()
		type key struct {
			node uuid.UUID
			seq  uint64
		}
		processed := map[key]bool{}
		l.ord.inTurn = func(node uuid.UUID, h *Header, d []byte, recs []Record) {
			k := key{node, binary.BigEndian.Uint64(d[30:HeaderLen])}
			if processed[k] {
				t.Fatalf("processed datagram %d of %v twice", k.seq, k.node)
			}
			processed[k] = true
			l.handleInTurn(node, h, d, recs)
		}
		for seq := uint64(1); seq <= 8; seq++ { // something for NAKs to find
			h := Header{Kind: KindData, Records: 1, Cluster: l.cluster, Node: l.cfg.Node, Seq: seq}
			d := AppendRecord(AppendHeader(nil, &h), &Record{ID: uuid.New(), Count: 1, Total: 3, Payload: []byte("abc")})
			l.hist.Add(seq, d)
		}
		now := time.Unix(1000, 0)
		var recs []Record
		from := netip.MustParseAddrPort("10.0.0.1:4454")
		for len(stream) >= 2 {
			n := min(int(binary.BigEndian.Uint16(stream)), len(stream)-2)
			d := append([]byte(nil), stream[2:2+n]...)
			stream = stream[2+n:]
			if n%7 == 3 {
				now = now.Add(time.Duration(n) * time.Millisecond)
				l.repairTick(now)
			}
			recs = l.handle(d, from, now, recs[:0])
			if l.ord.held > l.ord.holdTotal {
				t.Fatalf("holds %d bytes, bound %d", l.ord.held, l.ord.holdTotal)
			}
			for _, w := range l.ord.wins {
				if w.heldBytes > l.ord.holdPeer {
					t.Fatalf("a peer holds %d bytes, bound %d", w.heldBytes, l.ord.holdPeer)
				}
			}
		}
		l.mu.Lock()
		l.ord.age(now.Add(time.Hour), time.Second)
		l.mu.Unlock()
		l.logAndDeliver()
		if l.ord.held != 0 || len(l.ord.wins) != 0 {
			t.Fatalf("after aging: %d bytes held in %d windows", l.ord.held, len(l.ord.wins))
		}
		if c := l.ctl.bytes; c > maxCtlQueue {
			t.Fatalf("%d bytes of NAKs and repairs queued", c)
		}
	})
}

func isInvalid(name string) bool { return len(name) > 8 && name[:8] == "invalid-" }
