package natslink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/seeds"
	"github.com/netcluster/netcluster/internal/wire"
)

// packCorpusDirs hold raw inputs for FuzzNextPacked: packs written as
// seeds (testdata/fuzz/pack), and the frame streams of the wire
// package's corpus, which are bodies of packs too.
var packCorpusDirs = []string{"../testdata/fuzz/pack", "../testdata/fuzz/frame"}

// packOf is the body of a pack of the events.
func packOf(msgs ...wire.Message) []byte {
	var body []byte
	for i := range msgs {
		body = wire.AppendEvent(body, &msgs[i])
	}
	return body
}

// TestNextPacked reads a pack back: every frame, whole, with its header,
// and an error at the first bad one.
func TestNextPacked(t *testing.T) {
	var msgs []wire.Message
	for i, name := range []string{"a", "bb", "ccc"} {
		msgs = append(msgs, wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A",
			Event: name, Data: []byte{byte(i)}})
	}
	msgs[2].To, msgs[2].InReplyTo = uuid.New(), uuid.New()
	body := packOf(msgs...)
	for i, want := range msgs {
		frame, hdr, rest, err := nextPacked(body)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if one := wire.AppendEvent(nil, &want); !bytes.Equal(frame, one) {
			t.Errorf("frame %d is %x, want %x", i, frame, one)
		}
		if string(hdr.Event) != want.Event || hdr.ID != want.ID || hdr.To != want.To || !bytes.Equal(hdr.Data, want.Data) {
			t.Errorf("frame %d: header %+v, want %+v", i, hdr, want)
		}
		body = rest
	}
	if len(body) != 0 {
		t.Errorf("%d bytes left", len(body))
	}
	one := packOf(msgs[0])
	for _, bad := range [][]byte{
		{0, 0, 1},                          // less than a length
		one[:len(one)-1],                   // cut short
		{0, 0, 0, 2, 0x92, 0xc0},           // not an event frame
		append([]byte{0, 0, 0, 0}, one...), // an empty frame
	} {
		if _, _, _, err := nextPacked(bad); !errors.Is(err, errPack) {
			t.Errorf("nextPacked(%x): %v, want errPack", bad, err)
		}
	}
}

// FuzzNextPacked reads packs as the link does: it never panics, every
// frame it returns is the next length-prefixed frame of the body, whole,
// and a valid event whose header it returns, with an id and a sender,
// and each step consumes bytes.
func FuzzNextPacked(f *testing.F) {
	for _, dir := range packCorpusDirs {
		for _, b := range seeds.Load(f, dir) {
			f.Add(b.Data)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for len(body) > 0 {
			frame, hdr, rest, err := nextPacked(body)
			if err != nil {
				if !errors.Is(err, errPack) {
					t.Fatalf("error %v does not match errPack", err)
				}
				return
			}
			n := int(binary.BigEndian.Uint32(body))
			if len(frame) != wire.HeaderLen+n || !bytes.Equal(frame, body[:len(frame)]) || len(rest) != len(body)-len(frame) {
				t.Fatalf("frame of %d bytes and %d left from a body of %d whose first length is %d", len(frame), len(rest), len(body), n)
			}
			again, err := wire.ParseEvent(frame[wire.HeaderLen:])
			if err != nil || !reflect.DeepEqual(again, hdr) {
				t.Fatalf("the frame parses again to %+v, %v; nextPacked said %+v", again, err, hdr)
			}
			if err := wire.CheckEventIDs(&hdr); err != nil {
				t.Fatalf("nextPacked returned a frame whose %v", err)
			}
			body = rest
		}
	})
}

// TestPackDrainAtClose: the packs still waiting when Close is called are
// sent before it returns, none larger than 64 KiB, or than the NATS
// server's max_payload when lower; PublishFrame after Close says
// ErrClosed and nothing is left running (TestMain's goleak).
func TestPackDrainAtClose(t *testing.T) {
	for _, maxPayload := range []int32{0, 4096} {
		t.Run(fmt.Sprintf("max_payload %d", maxPayload), func(t *testing.T) {
			testPackDrainAtClose(t, maxPayload)
		})
	}
}

func testPackDrainAtClose(t *testing.T, maxPayload int32) {
	ns := startNATS(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	limit := maxPackBytes
	if maxPayload > 0 {
		limit = int(maxPayload)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var events, biggest atomic.Int64
	var packs int // nats.go calls one subscription's handler at a time
	sub, err := nc.Subscribe(Subject("netcluster", "", "A"), func(m *nats.Msg) {
		n, _ := strconv.Atoi(m.Header.Get(HeaderPack))
		packs++
		events.Add(int64(n))
		if int64(len(m.Data)) > biggest.Load() {
			biggest.Store(int64(len(m.Data)))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	nc.Flush()

	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), Pack: true, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	frame := wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Channel: "A", Event: "e", Data: []byte{0xc0}})
	for range n {
		if err := l.PublishFrame([]byte("A"), frame); err != nil {
			t.Fatal(err)
		}
	}
	pending := l.pk.pendingBytes()
	l.Close()
	if err := l.PublishFrame([]byte("A"), frame); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishFrame after Close: %v, want ErrClosed", err)
	}
	if st := l.Stats(); st.EventsOut != n || st.Dropped != 0 {
		t.Errorf("events out %d, dropped %d; want %d and 0", st.EventsOut, st.Dropped, n)
	}
	nc.Flush()
	for deadline := time.Now().Add(10 * time.Second); events.Load() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := events.Load(); got != n {
		t.Errorf("a plain subscriber got %d events, want %d", got, n)
	}
	if b := biggest.Load(); b > int64(limit) {
		t.Errorf("a pack of %d bytes, past the limit of %d", b, limit)
	}
	t.Logf("%d bytes of packs waited at Close; %d events came in %d packs, the biggest %d bytes", pending, n, packs, biggest.Load())
}
