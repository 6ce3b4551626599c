package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Vectors of the JSON text protocol (PROTOCOL.md § 10.7) and raw fuzz
// inputs.
const (
	jsonVectorDir = "../../testdata/json"
	frameDir      = "../../testdata/frames"
	jsonFuzzDir   = "../../testdata/fuzz/json"
	// msgpackFuzzDir holds raw msgpack values, one per file, for
	// FuzzAppendJSON: seeds, and inputs the fuzzer found (found-*).
	msgpackFuzzDir = "../../testdata/fuzz/msgpack"
)

var update = flag.Bool("update", false, "fill in the empty expectations of testdata/json vectors from the code (check the diff by eye)")

// jsonVector is one file of testdata/json.
type jsonVector struct {
	Description string `json:"description"`
	Direction   string `json:"direction"` // "to-server" or "to-client"
	// to-server
	Channel string `json:"channel,omitempty"`
	Want    *struct {
		Event   string `json:"event"`
		DataHex string `json:"data_hex"`
		ID      string `json:"id,omitempty"`
		To      string `json:"to,omitempty"`
		Re      string `json:"re,omitempty"`
	} `json:"want,omitempty"`
	// to-client
	Frame    string `json:"frame,omitempty"`     // a vector of testdata/frames
	FrameHex string `json:"frame_hex,omitempty"` // or the frame's bytes
	// both: the message without its NUL; for to-client, the exact text
	Text  string `json:"text"`
	Error string `json:"error,omitempty"`
}

func loadJSONVectors(t testing.TB) map[string]*jsonVector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(jsonVectorDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s: %v", jsonVectorDir, err)
	}
	out := make(map[string]*jsonVector)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var v jsonVector
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = &v
	}
	return out
}

// readHexFile reads a .hex vector: hex digits, with # comments and white
// space ignored.
func readHexFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	out, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func (v *jsonVector) frame(t testing.TB) []byte {
	t.Helper()
	if v.Frame != "" {
		return readHexFile(t, filepath.Join(frameDir, v.Frame+".hex"))
	}
	b, err := hex.DecodeString(v.FrameHex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func uuidText(id uuid.UUID) string {
	if id == (uuid.UUID{}) {
		return ""
	}
	return id.String()
}

// TestJSONVectors checks the codec against every vector of testdata/json.
func TestJSONVectors(t *testing.T) {
	for name, v := range loadJSONVectors(t) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			changed := false
			switch v.Direction {
			case "to-server":
				ev, err := DecodeJSON([]byte(v.Text))
				if v.Error != "" {
					if !errors.Is(err, ErrBadJSON) || !strings.Contains(err.Error(), v.Error) {
						t.Errorf("DecodeJSON: %v; want ErrBadJSON saying %q", err, v.Error)
					}
					return
				}
				if err != nil {
					t.Fatalf("DecodeJSON: %v", err)
				}
				if *update && v.Want.DataHex == "" {
					v.Want.DataHex, changed = hex.EncodeToString(ev.Data), true
				}
				w := v.Want
				if ev.Event != w.Event || hex.EncodeToString(ev.Data) != w.DataHex ||
					uuidText(ev.ID) != w.ID || uuidText(ev.To) != w.To || uuidText(ev.Re) != w.Re {
					t.Errorf("DecodeJSON = event %q data %x id %q to %q re %q;\nwant event %q data %s id %q to %q re %q",
						ev.Event, ev.Data, uuidText(ev.ID), uuidText(ev.To), uuidText(ev.Re), w.Event, w.DataHex, w.ID, w.To, w.Re)
				}
				// The frame made of it is one a Go client reads, and its
				// JSON form says the same.
				node, sender := uuid.New(), uuid.New()
				frame := AppendJSONFrame(nil, &ev, node, sender, v.Channel)
				h, err := ParseEvent(frame[HeaderLen:])
				if err != nil {
					t.Fatalf("the frame made of it: %v", err)
				}
				if string(h.Event) != ev.Event || string(h.Channel) != v.Channel || h.Origin != node || h.Sender != sender ||
					!bytes.Equal(h.Data, ev.Data) || (ev.ID != uuid.UUID{} && h.ID != ev.ID) {
					t.Errorf("frame %x does not carry the message", frame)
				}
				text, err := AppendJSON(nil, frame[HeaderLen:])
				if err != nil {
					t.Fatalf("AppendJSON of the frame: %v", err)
				}
				back, err := DecodeJSON(text[:len(text)-1])
				if err != nil || back.Event != ev.Event || back.To != ev.To || back.Re != ev.Re || back.ID != uuid.UUID(h.ID) {
					t.Errorf("its JSON form %s decodes as %+v, %v", text, back, err)
				}
			case "to-client":
				text, err := AppendJSON(nil, v.frame(t)[HeaderLen:])
				if v.Error != "" {
					if err == nil || !strings.Contains(err.Error(), v.Error) {
						t.Errorf("AppendJSON: %v; want an error saying %q", err, v.Error)
					}
					return
				}
				if err != nil {
					t.Fatalf("AppendJSON: %v", err)
				}
				if text[len(text)-1] != 0 {
					t.Fatalf("AppendJSON = %q, without its NUL", text)
				}
				text = text[:len(text)-1]
				if *update && v.Text == "" {
					v.Text, changed = string(text), true
				}
				if string(text) != v.Text {
					t.Errorf("AppendJSON =\n%s\nwant\n%s", text, v.Text)
				}
				if !json.Valid(text) {
					t.Errorf("AppendJSON made invalid JSON: %s", text)
				}
			default:
				t.Fatalf("direction %q; want to-server or to-client", v.Direction)
			}
			if changed {
				b, _ := json.MarshalIndent(v, "", "  ")
				if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestReadJSONText checks how messages are cut at NUL bytes, and the
// maxframe bound on a message without one.
func TestReadJSONText(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		max      int
		want     []string
		err      error
	}{
		{"two messages", "{}\x00{\"a\":1}\x00", 16, []string{"{}", `{"a":1}`}, nil},
		{"empty message", "\x00{}\x00", 16, []string{"", "{}"}, nil},
		{"exactly max", strings.Repeat("x", 16) + "\x00", 16, []string{strings.Repeat("x", 16)}, nil},
		{"one over max", strings.Repeat("x", 17) + "\x00", 16, nil, ErrFrameTooBig},
		{"no NUL, over max", strings.Repeat("x", 100), 16, nil, ErrFrameTooBig},
		{"ends inside a message", "{}\x00{\"a\"", 16, []string{"{}"}, errors.New("unexpected EOF")},
		{"larger than the reader's buffer", strings.Repeat("y", 100) + "\x00", 200, []string{strings.Repeat("y", 100)}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var err error
			for {
				var text []byte
				if text, err = ReadJSONText(br, tt.max, nil); err != nil {
					break
				}
				got = append(got, string(text))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("messages %q, want %q", got, tt.want)
			}
			switch {
			case tt.err == nil && err.Error() != "EOF":
				t.Errorf("ended with %v, want EOF", err)
			case tt.err != nil && !errors.Is(err, tt.err) && err.Error() != tt.err.Error():
				t.Errorf("ended with %v, want %v", err, tt.err)
			}
		})
	}
}

// TestAppendJSONDeep checks that deep nesting, which a frame may hold up
// to maxframe, neither exhausts the stack nor is misread.
func TestAppendJSONDeep(t *testing.T) {
	const depth = 200000
	data := append(bytes.Repeat([]byte{0x91}, depth), 0xc0)
	frame := AppendEvent(nil, &Message{Channel: "A", Event: "deep", Data: data})
	text, err := AppendJSON(nil, frame[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("[", depth) + "null" + strings.Repeat("]", depth)
	if !bytes.Contains(text, []byte(`"data":`+want+`,`)) {
		t.Errorf("deep data not rendered as %d nested arrays", depth)
	}
	ev, err := DecodeJSON(text[:len(text)-1])
	if err != nil || !bytes.Equal(ev.Data, data) {
		t.Errorf("and back: %v, same data %v", err, bytes.Equal(ev.Data, data))
	}
}

// jsonFuzzSeeds are the texts of the to-server vectors and the raw
// corpus files.
func jsonFuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, v := range loadJSONVectors(f) {
		if v.Direction == "to-server" {
			seeds = append(seeds, []byte(v.Text))
		}
	}
	return append(seeds, corpus(f, jsonFuzzDir)...)
}

// FuzzDecodeJSON decodes arbitrary text as a JSON message. Whatever it
// accepts must make a frame that a Go client reads, whose JSON form
// decodes to the same event.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonFuzzSeeds(f) {
		f.Add(s)
	}
	node, sender := uuid.New(), uuid.New()
	f.Fuzz(func(t *testing.T, text []byte) {
		ev, err := DecodeJSON(text)
		if err != nil {
			if !errors.Is(err, ErrBadJSON) {
				t.Fatalf("error %v does not match ErrBadJSON", err)
			}
			return
		}
		frame := AppendJSONFrame(nil, &ev, node, sender, "A")
		h, err := ParseEvent(frame[HeaderLen:])
		if err != nil {
			t.Fatalf("frame of %q: %v", text, err)
		}
		if !bytes.Equal(h.Data, ev.Data) || string(h.Event) != ev.Event {
			t.Fatalf("frame of %q does not carry it", text)
		}
		out, err := AppendJSON(nil, frame[HeaderLen:])
		if err != nil {
			t.Fatalf("JSON form of %q: %v", text, err)
		}
		if !json.Valid(out[:len(out)-1]) {
			t.Fatalf("JSON form of %q is not JSON: %q", text, out)
		}
		back, err := DecodeJSON(out[:len(out)-1])
		if err != nil || back.Event != ev.Event || back.To != ev.To || back.Re != ev.Re {
			t.Fatalf("JSON form %q of %q decodes as %+v, %v", out, text, back, err)
		}
	})
}

// FuzzAppendJSON renders arbitrary data as the data of an event: it must
// give valid JSON or an error, never a panic.
func FuzzAppendJSON(f *testing.F) {
	for _, v := range loadJSONVectors(f) {
		if v.Direction == "to-client" {
			frame := v.frame(f)
			if h, err := ParseEvent(frame[HeaderLen:]); err == nil {
				f.Add([]byte(h.Data))
			}
		}
	}
	for _, b := range corpus(f, msgpackFuzzDir) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := appendJSONData(nil, data)
		// The transcoder walks msgpack as skipValue does: it takes
		// exactly the single well-formed values.
		r := reader{b: data}
		r.skipValue("data")
		oneValue := r.err == nil && r.off == len(data)
		switch {
		case err == nil:
			if !oneValue {
				t.Fatalf("data %x is not one msgpack value, yet gave JSON %q", data, out)
			}
			if !json.Valid(out) {
				t.Fatalf("data %x gave invalid JSON %q", data, out)
			}
		case errors.Is(err, ErrBadFrame):
			if oneValue {
				t.Fatalf("data %x is one msgpack value, yet the transcoder says %v", data, err)
			}
		case !errors.Is(err, errNotJSON):
			t.Fatalf("data %x: %v, neither ErrBadFrame nor errNotJSON", data, err)
		}
	})
}

// BenchmarkAppendJSON puts an event with a small map into JSON form, as
// the server does once per event that JSON clients hear.
func BenchmarkAppendJSON(b *testing.B) {
	frame := readHexFile(b, filepath.Join(frameDir, "event-map.hex"))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		var err error
		if buf, err = AppendJSON(buf[:0], frame[HeaderLen:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSON decodes a JSON client's message and makes its
// frame, as the server does for every message a JSON client sends.
func BenchmarkDecodeJSON(b *testing.B) {
	text := []byte(`{"channel":"log","broadcast":false,"event":"log","data":{"level":"info","msg":"disk almost full"}}`)
	node, sender := uuid.New(), uuid.New()
	b.ReportAllocs()
	var frame []byte
	for b.Loop() {
		ev, err := DecodeJSON(text)
		if err != nil {
			b.Fatal(err)
		}
		frame = AppendJSONFrame(frame[:0], &ev, node, sender, "log")
	}
}

// TestAppendJSONFrameCanonical checks that without to and re the frame
// made for a JSON message is the one AppendEvent makes.
func TestAppendJSONFrameCanonical(t *testing.T) {
	ev := JSONEvent{Event: strings.Repeat("e", 40), Data: []byte{0x92, 0x01, 0xa1, 'x'}, ID: uuid.New()}
	node, sender := uuid.New(), uuid.New()
	got := AppendJSONFrame([]byte("prefix"), &ev, node, sender, "chan")
	want := AppendEvent([]byte("prefix"), &Message{ID: ev.ID, Origin: node, Sender: sender, Channel: "chan", Event: ev.Event, Data: ev.Data})
	if !bytes.Equal(got, want) {
		t.Errorf("AppendJSONFrame =\n% x\nwant\n% x", got, want)
	}
}

// TestTranscodeHeaders checks container headers at the edges of their
// msgpack formats: fix up to 15 elements, 16-bit counts up to 65535, then
// 32-bit ones; nested, so that the last pass moves bytes between them.
func TestTranscodeHeaders(t *testing.T) {
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		items := strings.TrimSuffix(strings.Repeat("[{}],", n), ",")
		ev, err := DecodeJSON([]byte(`{"event":"x","data":{"k":[` + items + `]}}`))
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		want = append(want, 0x81, 0xa1, 'k')
		switch {
		case n < 16:
			want = append(want, 0x90|byte(n))
		case n < 65536:
			want = append(want, 0xdc, byte(n>>8), byte(n))
		default:
			want = append(want, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		want = append(want, bytes.Repeat([]byte{0x91, 0x80}, n)...)
		if !bytes.Equal(ev.Data, want) {
			t.Errorf("%d elements: data starts % x, want % x", n, ev.Data[:min(len(ev.Data), 12)], want[:min(len(want), 12)])
		}
	}
}
