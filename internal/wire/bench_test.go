package wire

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// benchString is the data of the benchmark event: with the event name
// "log" on channel "log", the frame is 128 bytes, length prefix included.
var benchString = strings.Repeat("disk almost full on /var ", 3)[:58]

// benchMap is a small map of the kind a log event carries.
var benchMap = map[string]any{"level": "warn", "msg": "disk almost full", "pct": 93}

// benchEvents are the events the codec benchmarks encode and decode.
func benchEvents(b *testing.B) []struct {
	name  string
	value any
	msg   Message
	frame []byte
} {
	b.Helper()
	var out []struct {
		name  string
		value any
		msg   Message
		frame []byte
	}
	for _, c := range []struct {
		name  string
		value any
	}{{"string", benchString}, {"map", benchMap}} {
		data, err := AppendData(nil, c.value)
		if err != nil {
			b.Fatal(err)
		}
		m := Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "log", Data: data}
		out = append(out, struct {
			name  string
			value any
			msg   Message
			frame []byte
		}{c.name, c.value, m, AppendEvent(nil, &m)})
	}
	if n := len(out[0].frame); n != 128 {
		b.Fatalf("the string event is %d bytes, want 128", n)
	}
	return out
}

func BenchmarkAppendEvent(b *testing.B) {
	for _, ev := range benchEvents(b) {
		b.Run(ev.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ev.frame)))
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf = AppendEvent(buf[:0], &ev.msg)
			}
		})
	}
}

func BenchmarkParseEvent(b *testing.B) {
	benchDecoder(b, func(body []byte) error { _, err := ParseEvent(body); return err })
}

func BenchmarkDecodeEvent(b *testing.B) {
	benchDecoder(b, func(body []byte) error { _, err := DecodeEvent(body); return err })
}

// benchDecoder runs decode on the body of each benchmark event.
func benchDecoder(b *testing.B, decode func(body []byte) error) {
	for _, ev := range benchEvents(b) {
		b.Run(ev.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ev.frame)))
			body := ev.frame[HeaderLen:]
			for b.Loop() {
				if err := decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendData(b *testing.B) {
	cases := []struct {
		name  string
		value any
	}{
		{"string", benchString},
		{"map", benchMap},
		{"struct", testPayload{Level: "warn", Count: 93, Tags: []string{"disk"}}},
		{"raw", RawData(AppendEvent(nil, &Message{Data: []byte{0xc0}})[HeaderLen:])},
		{"nil", nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			var err error
			for b.Loop() {
				if buf, err = AppendData(buf[:0], c.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientDecode is the client's decode of a stream of events
// with the same channel and event names.
func BenchmarkClientDecode(b *testing.B) {
	var names NameCache
	benchDecoder(b, func(body []byte) error { _, err := names.DecodeEvent(body); return err })
}

// BenchmarkReadFrame reads a stream of 128-byte event frames through a
// 64 KiB buffer, as a client's read loop does.
func BenchmarkReadFrame(b *testing.B) {
	ev := benchEvents(b)[0]
	stream := bytes.Repeat(ev.frame, 512)
	rd := bytes.NewReader(stream)
	fr := NewFrameReader(bufio.NewReaderSize(rd, 64<<10), 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev.frame)))
	for b.Loop() {
		if _, err := fr.ReadFrame(); err != nil {
			rd.Reset(stream)
			if _, err := fr.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
