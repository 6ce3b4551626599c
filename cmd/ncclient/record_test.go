package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/mcap"
	"github.com/netcluster/netcluster/router/routertest"
	"github.com/vmihailenco/msgpack/v5"
)

// streamEvent is one event of the known stream the tests record, with
// the pause before it.
type streamEvent struct {
	event string
	data  []byte // one msgpack value, as it goes on the wire
	pause time.Duration
}

// knownStream is a mix of events and sizes: strings, nil, bin of 0 bytes
// to 200 KiB, ext values (an application type and a timestamp), and
// nested maps and arrays, some after a pause.
func knownStream(t *testing.T) []streamEvent {
	t.Helper()
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bin := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return enc(b)
	}
	return []streamEvent{
		{event: "log", data: enc("hello")},
		{event: "nil", data: []byte{0xc0}},
		{event: "blob", data: bin(0)},
		{event: "blob", data: bin(1), pause: 150 * time.Millisecond},
		{event: "ext", data: []byte{0xd6, 0x05, 1, 2, 3, 4}},                     // fixext 4, type 5
		{event: "ext", data: []byte{0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00}},         // a timestamp
		{event: "ext", data: append([]byte{0xc7, 0x03, 0x2a}, 0xaa, 0xbb, 0xcc)}, // ext 8, type 42
		{event: "nested", data: enc(map[string]any{"a": map[string]any{"b": []any{int64(1), "x", []byte{1, 2}, map[string]any{"c": 2.5}}}}), pause: 250 * time.Millisecond},
		{event: "blob", data: bin(1000)},
		{event: "blob", data: bin(200 << 10), pause: 100 * time.Millisecond},
		{event: "log.x", data: enc([]any{"two", int64(-3), true})},
	}
}

// stamped is an event a test listener heard, and when.
type stamped struct {
	event string
	data  []byte
	at    time.Time
}

// hear keeps every event c hears on pattern, with its arrival time.
type hear struct {
	mu  sync.Mutex
	got []stamped
}

func listenStamped(t *testing.T, c *bus.Client, pattern string) *hear {
	t.Helper()
	h := &hear{}
	if _, err := c.On(pattern, func(m bus.Message) {
		h.mu.Lock()
		h.got = append(h.got, stamped{event: m.Event, data: m.Data, at: time.Now()})
		h.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hear) events() []stamped {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]stamped(nil), h.got...)
}

func (h *hear) wait(t *testing.T, n int) []stamped {
	t.Helper()
	routertest.WaitFor(t, strconv.Itoa(n)+" events", func() bool { return len(h.events()) >= n })
	return h.events()
}

// emitStream emits the stream on c, pausing where it says.
func emitStream(t *testing.T, c *bus.Client, stream []streamEvent) {
	t.Helper()
	for _, e := range stream {
		time.Sleep(e.pause)
		if err := c.Emit(e.event, bus.RawData(e.data)); err != nil {
			t.Fatal(err)
		}
	}
}

// readRecording opens a recording and returns its channels and messages.
func readRecording(t *testing.T, path string) (*mcap.File, []mcap.Message) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mcap.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the recording does not read back: %v", err)
	}
	var msgs []mcap.Message
	if err := f.Messages(func(ch *mcap.Channel, m *mcap.Message) error {
		c := *m
		c.Data = bytes.Clone(m.Data)
		msgs = append(msgs, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return f, msgs
}

// TestRecordReplay records a known stream from a real server with
// -count, checks the file, replays it onto another server's channel with
// -map, and compares what arrives there byte for byte, with the spacing
// kept; with events one by one, and in lz4 chunks.
func TestRecordReplay(t *testing.T) {
	for _, compress := range []string{"none", "lz4"} {
		t.Run(compress, func(t *testing.T) { testRecordReplay(t, compress) })
	}
}

func testRecordReplay(t *testing.T, compress string) {
	stream := knownStream(t)
	ts := newServer(t)
	path := filepath.Join(t.TempDir(), "rec.mcap")
	rec := start(t, ts.Template, "record", "-o", path, "-compress", compress, "-count", strconv.Itoa(len(stream)), "A")
	rec.waitStderr(t, "recording A")
	a := ts.Dial(t, "A")
	emitStream(t, a, stream)
	if code := rec.exit(t); code != 0 {
		t.Fatalf("record exited %d: %s", code, rec.stderrText())
	}
	if want := "recorded " + strconv.Itoa(len(stream)) + " events"; !strings.Contains(rec.stderrText(), want) {
		t.Errorf("record said %q, want %q", rec.stderrText(), want)
	}
	// Piped, it says when it starts and when it ends, and draws no
	// progress line.
	if lines := strings.Split(strings.TrimSpace(rec.stderrText()), "\n"); len(lines) != 2 || strings.Contains(rec.stderrText(), "\r") {
		t.Errorf("record's stderr through a pipe is %q, want two lines", rec.stderrText())
	}
	f, msgs := readRecording(t, path)
	if len(msgs) != len(stream) {
		t.Fatalf("the recording has %d messages, %d were emitted", len(msgs), len(stream))
	}
	for i, m := range msgs {
		ch := f.Channels[m.ChannelID]
		e := stream[i]
		if ch.Topic != "A/"+e.event || ch.MessageEncoding != "msgpack" || ch.SchemaID != 0 {
			t.Errorf("message %d on channel %+v, want topic A/%s, msgpack, no schema", i, ch, e.event)
		}
		if ch.Metadata["sender"] != a.ID().String() || ch.Metadata["origin"] != ts.Node().String() || ch.Metadata["emitted_on"] != "A" {
			t.Errorf("message %d: channel metadata %v, want sender %s and origin %s", i, ch.Metadata, a.ID(), ts.Node())
		}
		if !bytes.Equal(m.Data, e.data) {
			t.Errorf("message %d (%s): recorded %d bytes %.20x, emitted %d bytes %.20x", i, e.event, len(m.Data), m.Data, len(e.data), e.data)
		}
		if m.PublishTime != m.LogTime || (i > 0 && m.LogTime < msgs[i-1].LogTime) {
			t.Errorf("message %d: log time %d, publish time %d, previous log time %d", i, m.LogTime, m.PublishTime, msgs[i-1].LogTime)
		}
	}
	if st := f.Statistics; st == nil || st.MessageCount != uint64(len(stream)) || (st.ChunkCount > 0) != (compress == "lz4") {
		t.Errorf("statistics %+v, want %d messages, chunks only with lz4", f.Statistics, len(stream))
	}

	other := newServer(t)
	h := listenStamped(t, other.Dial(t, "B"), ".*")
	must(t, other.Template, "replay", "-map", "A=B", path)
	got := h.wait(t, len(stream))
	if len(got) != len(stream) {
		t.Fatalf("replay delivered %d events, want %d", len(got), len(stream))
	}
	for i, g := range got {
		if g.event != stream[i].event || !bytes.Equal(g.data, stream[i].data) {
			t.Errorf("replayed event %d is %s %.20x (%d bytes), recorded %s %.20x (%d bytes)", i, g.event, g.data, len(g.data), stream[i].event, stream[i].data, len(stream[i].data))
		}
	}
	// The spacing: the replay waits as the recording did (sent at once,
	// the stream would take milliseconds, not half a second), and is not
	// slower by more than a loaded machine's scheduling explains. The
	// lower bound leaves room for a first event delivered late.
	recorded := time.Duration(msgs[len(msgs)-1].LogTime - msgs[0].LogTime)
	replayed := got[len(got)-1].at.Sub(got[0].at)
	if replayed < recorded*6/10 || replayed > recorded+5*time.Second {
		t.Errorf("the recording spans %v, its replay %v", recorded, replayed)
	}
}
