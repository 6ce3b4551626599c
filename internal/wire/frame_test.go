package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
)

// The ids the test vectors use.
var (
	testClient = uuid.MustParse("0f8fad5b-d9cb-469f-a165-70867728950e")
	testNode   = uuid.MustParse("7c9e6679-7425-40de-944b-e07fc1f90ae7")
	testID     = uuid.MustParse("9a1f4c2e-5b3d-4e6f-8a7b-0c1d2e3f4a5b")
)

// vectorDir holds the wire test vectors that PROTOCOL.md describes.
const vectorDir = "../../testdata/frames"

// ---------------------------------------------------------------------------
// Helpers shared by the codec tests, fuzz targets and benchmarks.

// appendFrame encodes v (a Hello, Welcome, ErrorFrame or Message) as a
// complete frame appended to dst.
func appendFrame(dst []byte, v any) []byte {
	switch v := v.(type) {
	case Hello:
		return AppendHello(dst, &v)
	case Welcome:
		return AppendWelcome(dst, &v)
	case ErrorFrame:
		return AppendError(dst, &v)
	case Message:
		return AppendEvent(dst, &v)
	case pingValue:
		return AppendPing(dst)
	case pongValue:
		return AppendPong(dst)
	case drainValue:
		return AppendDrain(dst)
	case Interest:
		return AppendInterest(dst, &v)
	case appliedValue:
		return AppendApplied(dst, v.Seq)
	}
	panic(fmt.Sprintf("appendFrame: %T", v))
}

// decodeAs decodes body with the decoder of frame type t.
func decodeAs(t FrameType, body []byte) (any, error) {
	switch t {
	case FrameHello:
		return DecodeHello(body)
	case FrameWelcome:
		return DecodeWelcome(body)
	case FrameError:
		return DecodeError(body)
	case FrameEvent:
		return DecodeEvent(body)
	case FramePing:
		return pingValue{}, DecodePing(body)
	case FramePong:
		return pongValue{}, DecodePong(body)
	case FrameDrain:
		return drainValue{}, DecodeDrain(body)
	case FrameInterest:
		return DecodeInterest(body)
	case FrameApplied:
		seq, err := DecodeApplied(body)
		return appliedValue{seq}, err
	}
	return nil, fmt.Errorf("test has no decoder for %v", t)
}

// pingValue and pongValue stand for a Ping and a Pong frame, which have
// no fields, where the tests want a value.
type (
	pingValue  struct{}
	pongValue  struct{}
	drainValue struct{}
)

// appliedValue stands for an Applied frame, whose decoder returns a
// bare seq.
type appliedValue struct{ Seq uint64 }

var frameTypes = []FrameType{FrameHello, FrameWelcome, FrameEvent, FrameError, FramePing, FramePong, FrameDrain,
	FrameInterest, FrameApplied}

// diffLines renders the difference of two texts line by line, as
// (-want +got).
func diffLines(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// Longest common subsequence, then walk it.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			sb.WriteString("  " + a[i] + "\n")
			i++
			j++
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			sb.WriteString("+ " + b[j] + "\n")
			j++
		default:
			sb.WriteString("- " + a[i] + "\n")
			i++
		}
	}
	return sb.String()
}

// diffBytes compares two encodings as hex dumps; "" means equal.
func diffBytes(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	return diffLines(hex.Dump(want), hex.Dump(got))
}

// diffJSON compares two values by their JSON renderings; "" means equal.
func diffJSON(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, _ := json.MarshalIndent(want, "", "  ")
	g, _ := json.MarshalIndent(got, "", "  ")
	return diffLines(string(w), string(g))
}

// ---------------------------------------------------------------------------
// Test vectors.

// vector is one NAME.hex / NAME.json pair of testdata/frames.
type vector struct {
	Name   string `json:"-"`
	Stream []byte `json:"-"` // the bytes of NAME.hex

	Description string          `json:"description"`
	Canonical   *bool           `json:"canonical"` // valid vectors: encoding the fields gives Stream
	Type        string          `json:"type"`      // valid vectors: a key of typeNames
	Fields      json.RawMessage `json:"fields"`
	DataHex     *string         `json:"data_hex"`  // events: the data's exact encoding
	Error       string          `json:"error"`     // invalid vectors: bad_frame, frame_too_big, unexpected_eof
	MaxFrame    int             `json:"maxframe"`  // the reader's limit; 0 means DefaultMaxFrame
	DecodeAs    string          `json:"decode_as"` // decode with this type's decoder, not the one the frame names
}

var typeNames = map[string]FrameType{
	"hello": FrameHello, "welcome": FrameWelcome, "event": FrameEvent, "error": FrameError,
	"ping": FramePing, "pong": FramePong, "drain": FrameDrain,
	"interest": FrameInterest, "applied": FrameApplied,
}

// parseHex reads the text of a .hex vector: hex digits, with whitespace
// anywhere and comments from # to the end of a line.
func parseHex(text string) ([]byte, error) {
	var digits strings.Builder
	for l := range strings.Lines(text) {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		for _, f := range strings.Fields(l) {
			digits.WriteString(f)
		}
	}
	return hex.DecodeString(digits.String())
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	hexes, err := filepath.Glob(filepath.Join(vectorDir, "*.hex"))
	if err != nil {
		tb.Fatal(err)
	}
	jsons, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(hexes) == 0 {
		tb.Fatalf("no test vectors in %s", vectorDir)
	}
	if len(hexes) != len(jsons) {
		tb.Fatalf("%s holds %d .hex files and %d .json files; each vector needs both", vectorDir, len(hexes), len(jsons))
	}
	var vs []vector
	for _, hf := range hexes {
		name := strings.TrimSuffix(filepath.Base(hf), ".hex")
		text, err := os.ReadFile(hf)
		if err != nil {
			tb.Fatal(err)
		}
		v := vector{Name: name}
		if v.Stream, err = parseHex(string(text)); err != nil {
			tb.Fatalf("%s: %v", hf, err)
		}
		js, err := os.ReadFile(strings.TrimSuffix(hf, ".hex") + ".json")
		if err != nil {
			tb.Fatalf("vector %s: %v", name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			tb.Fatalf("%s.json: %v", name, err)
		}
		switch {
		case v.Description == "":
			tb.Fatalf("%s.json: no description", name)
		case v.Error != "":
			if !slices.Contains([]string{"bad_frame", "frame_too_big", "unexpected_eof"}, v.Error) {
				tb.Fatalf("%s.json: unknown error %q", name, v.Error)
			}
			if v.Canonical != nil || v.Fields != nil || v.Type != "" {
				tb.Fatalf("%s.json: an invalid vector has no canonical, type or fields", name)
			}
		default:
			if _, ok := typeNames[v.Type]; !ok || v.Canonical == nil || v.Fields == nil {
				tb.Fatalf("%s.json: a valid vector needs type, canonical and fields", name)
			}
			if (v.Type == "event") != (v.DataHex != nil) {
				tb.Fatalf("%s.json: data_hex goes with event vectors, and only with them", name)
			}
		}
		if _, ok := typeNames[v.DecodeAs]; v.DecodeAs != "" && !ok {
			tb.Fatalf("%s.json: unknown decode_as %q", name, v.DecodeAs)
		}
		vs = append(vs, v)
	}
	return vs
}

// readVector reads the vector's stream with a FrameReader and decodes
// the frame with the decoder its type (or decode_as) names.
func readVector(v vector) (frame []byte, val any, err error) {
	max := v.MaxFrame
	if max == 0 {
		max = DefaultMaxFrame
	}
	fr := NewFrameReader(bufio.NewReader(bytes.NewReader(v.Stream)), max)
	frame, err = fr.ReadFrame()
	if err != nil {
		return nil, nil, err
	}
	body := frame[HeaderLen:]
	t := typeNames[v.DecodeAs]
	if v.DecodeAs == "" {
		if t, err = TypeOf(body); err != nil {
			return frame, nil, err
		}
	}
	val, err = decodeAs(t, body)
	return frame, val, err
}

// fieldsOf renders a decoded frame as a vector's "fields": ids as UUID
// strings, event data as the JSON of its msgpack value.
func fieldsOf(v any) (map[string]any, error) {
	switch v := v.(type) {
	case Hello:
		f := map[string]any{"version": v.Version, "client_id": uuid.UUID(v.ClientID).String(), "name": v.Name, "pid": v.PID}
		if v.resumes() {
			own := []string{}
			for _, id := range v.Own {
				own = append(own, uuid.UUID(id).String())
			}
			f["resume_epoch"], f["resume_after"] = optIDString(v.Resume.Epoch), optIDString(v.Resume.After)
			f["since"], f["own"] = v.Since, own
		}
		if v.declares() {
			f["interest"] = patternsOf(v.Interest)
		}
		return f, nil
	case Welcome:
		f := map[string]any{"version": v.Version, "node": uuid.UUID(v.Node).String(), "channel": v.Channel, "maxframe": v.MaxFrame, "pid": v.PID}
		if v.resumes() {
			f["epoch"], f["from"], f["missed"] = uuid.UUID(v.Epoch).String(), optIDString(v.From), v.Missed
		}
		return f, nil
	case ErrorFrame:
		return map[string]any{"code": uint16(v.Code), "message": v.Message}, nil
	case pingValue, pongValue, drainValue:
		return map[string]any{}, nil
	case Interest:
		return map[string]any{"seq": v.Seq, "patterns": patternsOf(&v)}, nil
	case appliedValue:
		return map[string]any{"seq": v.Seq}, nil
	case Message:
		var data any
		if err := msgpack.Unmarshal(v.Data, &data); err != nil {
			return nil, fmt.Errorf("decoding data % x: %w", v.Data, err)
		}
		f := map[string]any{"id": v.ID.String(), "origin": v.Origin.String(), "sender": v.Sender.String(),
			"channel": v.Channel, "event": v.Event, "data": data}
		if v.To != uuid.Nil {
			f["to"] = v.To.String()
		}
		if v.InReplyTo != uuid.Nil {
			f["re"] = v.InReplyTo.String()
		}
		return f, nil
	}
	return nil, fmt.Errorf("fieldsOf: %T", v)
}

// normalJSON turns a value into what encoding/json makes of its JSON
// text, numbers kept exact, so that two renderings compare with DeepEqual.
func normalJSON(v any) (any, error) {
	js, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if js, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var out any
	err := dec.Decode(&out)
	return out, err
}

// vectorFields is the "fields" object of any valid vector.
type vectorFields struct {
	Version  uint64          `json:"version"`
	ClientID string          `json:"client_id"`
	Name     string          `json:"name"`
	PID      uint64          `json:"pid"`
	Node     string          `json:"node"`
	Channel  string          `json:"channel"`
	MaxFrame uint64          `json:"maxframe"`
	Code     uint16          `json:"code"`
	Message  string          `json:"message"`
	ID       string          `json:"id"`
	Origin   string          `json:"origin"`
	Sender   string          `json:"sender"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	To       string          `json:"to"` // events: "" when not addressed
	Re       string          `json:"re"` // events: "" when it answers nothing
	// Version 3: a Hello's resume fields and a Welcome's; "" for nil.
	ResumeEpoch string   `json:"resume_epoch"`
	ResumeAfter string   `json:"resume_after"`
	Since       uint64   `json:"since"`
	Own         []string `json:"own"`
	Epoch       string   `json:"epoch"`
	From        string   `json:"from"`
	Missed      uint64   `json:"missed"`
	// Version 4: a Hello's interest (absent: none declared) and an
	// Interest frame's patterns, each null for All or a list of str;
	// the seq of Interest and Applied.
	Interest json.RawMessage `json:"interest"`
	Patterns json.RawMessage `json:"patterns"`
	Seq      uint64          `json:"seq"`
}

// patternsOf renders a declaration as the vectors write it: nil for All,
// else the list of patterns, empty or not.
func patternsOf(in *Interest) any {
	if in.All {
		return nil
	}
	return append([]string{}, in.Patterns...)
}

// interestOf parses what patternsOf renders.
func interestOf(js json.RawMessage) (*Interest, error) {
	if js == nil {
		return nil, errors.New("no patterns")
	}
	if string(js) == "null" {
		return &Interest{All: true}, nil
	}
	in := &Interest{Patterns: []string{}}
	return in, json.Unmarshal(js, &in.Patterns)
}

// optIDString renders an id that may be absent: "" for the zero id.
func optIDString(id [16]byte) string {
	if id == ([16]byte{}) {
		return ""
	}
	return uuid.UUID(id).String()
}

// optID parses what optIDString renders.
func optID(s string) ([16]byte, error) {
	if s == "" {
		return [16]byte{}, nil
	}
	return uuid.Parse(s)
}

// valueOf builds the Go value a valid vector describes, for encoding.
func valueOf(v vector) (any, error) {
	var f vectorFields
	dec := json.NewDecoder(bytes.NewReader(v.Fields))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	id := func(s string) (uuid.UUID, error) { return uuid.Parse(s) }
	switch typeNames[v.Type] {
	case FrameHello:
		c, err := id(f.ClientID)
		h := Hello{Version: f.Version, ClientID: c, Name: f.Name, PID: f.PID, Since: f.Since}
		errs := []error{err}
		h.Resume.Epoch, err = optID(f.ResumeEpoch)
		errs = append(errs, err)
		h.Resume.After, err = optID(f.ResumeAfter)
		errs = append(errs, err)
		for _, s := range f.Own {
			o, err := id(s)
			h.Own, errs = append(h.Own, o), append(errs, err)
		}
		if f.Interest != nil {
			h.Interest, err = interestOf(f.Interest)
			errs = append(errs, err)
		}
		return h, errors.Join(errs...)
	case FrameWelcome:
		n, err := id(f.Node)
		w := Welcome{Version: f.Version, Node: n, Channel: f.Channel, MaxFrame: f.MaxFrame, PID: f.PID, Missed: f.Missed}
		errs := []error{err}
		w.Epoch, err = optID(f.Epoch)
		errs = append(errs, err)
		w.From, err = optID(f.From)
		return w, errors.Join(append(errs, err)...)
	case FrameError:
		return ErrorFrame{Code: ErrorCode(f.Code), Message: f.Message}, nil
	case FramePing:
		return pingValue{}, nil
	case FramePong:
		return pongValue{}, nil
	case FrameDrain:
		return drainValue{}, nil
	case FrameInterest:
		in, err := interestOf(f.Patterns)
		if err != nil {
			return nil, err
		}
		in.Seq = f.Seq
		return *in, nil
	case FrameApplied:
		return appliedValue{f.Seq}, nil
	case FrameEvent:
		data, err := hex.DecodeString(*v.DataHex)
		if err != nil {
			return nil, err
		}
		var ids [5]uuid.UUID
		for i, s := range []string{f.ID, f.Origin, f.Sender, f.To, f.Re} {
			if s == "" && i >= 3 {
				continue
			}
			if ids[i], err = id(s); err != nil {
				return nil, err
			}
		}
		return Message{ID: ids[0], Origin: ids[1], Sender: ids[2], Channel: f.Channel, Event: f.Event, Data: data,
			To: ids[3], InReplyTo: ids[4]}, nil
	}
	return nil, fmt.Errorf("no type %q", v.Type)
}

// The vectors the protocol page promises; a missing one fails.
var requiredVectors = []string{
	"hello", "hello-v2-extra-fields", "welcome", "error-version", "error-shutdown", "error-forbidden",
	"event-map", "event-nil", "event-name-str16", "event-extra-fields", "event-scalars", "event-wide-encodings",
	"invalid-truncated-stream", "invalid-truncated-body", "invalid-id-not-bin", "invalid-frame-type-mismatch",
	"invalid-unknown-frame-type", "invalid-frame-type-259", "invalid-uuid-15-bytes", "invalid-bytes-after-array",
	"invalid-nested-count-past-end", "invalid-data-c1", "invalid-empty-frame", "invalid-length-over-maxframe",
	"invalid-length-4gib", "invalid-over-small-maxframe", "invalid-not-an-array", "invalid-empty-array",
	"invalid-missing-field", "invalid-error-code-too-big", "invalid-version-negative", "invalid-version-int8",
	"invalid-str-length-past-end", "event-reply", "invalid-event-to-not-id",
	"ping", "pong", "ping-extra-fields", "invalid-ping-bytes-after-array",
	"hello-resume", "welcome-resume", "drain",
	"hello-interest", "hello-interest-all", "interest", "interest-all", "interest-none", "interest-extra-fields",
	"applied", "invalid-interest-too-many-patterns", "invalid-interest-pattern-too-long",
	"invalid-interest-pattern-not-utf8", "invalid-interest-pattern-not-str", "invalid-interest-no-patterns",
	"invalid-interest-patterns-not-array", "invalid-applied-no-seq", "invalid-hello-interest-not-array",
}

// invalidReasons says where and why the Go decoder refuses some invalid
// vectors, so that each fails for the reason its name gives and not for
// an accident of its bytes (a body cut short, say).
var invalidReasons = map[string]struct {
	offset int
	reason string
}{
	"invalid-interest-too-many-patterns":  {3, "patterns: 1025, at most 1024"},
	"invalid-interest-pattern-too-long":   {4, "pattern 0: 4097 bytes, at most 4096"},
	"invalid-interest-pattern-not-utf8":   {8, "pattern 1: not UTF-8"},
	"invalid-interest-pattern-not-str":    {8, "pattern: not a string"},
	"invalid-interest-no-patterns":        {0, "interest frame has 1 fields, want at least 2"},
	"invalid-interest-patterns-not-array": {3, "patterns: not an array"},
	"invalid-applied-no-seq":              {0, "applied frame has 0 fields, want at least 1"},
	"invalid-hello-interest-not-array":    {37, "patterns: not an array"},
}

func TestVectorSet(t *testing.T) {
	vs := loadVectors(t)
	have := map[string]vector{}
	types := map[string]int{}
	for _, v := range vs {
		have[v.Name] = v
		types[v.Type]++
		if strings.HasPrefix(v.Name, "invalid-") != (v.Error != "") {
			t.Errorf("vector %s: the name starts with invalid- exactly when it has an error", v.Name)
		}
	}
	for _, name := range requiredVectors {
		if _, ok := have[name]; !ok {
			t.Errorf("vector %s is missing from %s", name, vectorDir)
		}
	}
	for name := range typeNames {
		if types[name] == 0 {
			t.Errorf("no valid vector of type %s", name)
		}
	}
	if v := have["event-name-str16"]; !bytes.Contains(v.Stream, []byte{0xda, 0x01, 0x2c}) {
		t.Errorf("event-name-str16 holds no str16 header da 01 2c")
	}
}

func TestVectorsDecode(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Error != "" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			frame, val, err := readVector(v)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			if d := diffBytes(v.Stream, frame); d != "" {
				t.Errorf("the vector is not exactly one frame (-want +got):\n%s", d)
			}
			body := frame[HeaderLen:]
			if typ, err := TypeOf(body); err != nil || typ != typeNames[v.Type] {
				t.Errorf("TypeOf = %v, %v; want %v", typ, err, v.Type)
			}
			got, err := fieldsOf(val)
			if err != nil {
				t.Fatal(err)
			}
			gotN, err := normalJSON(got)
			if err != nil {
				t.Fatal(err)
			}
			wantN, err := normalJSON(v.Fields)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffJSON(wantN, gotN); d != "" {
				t.Errorf("fields (-want +got):\n%s", d)
			}
			// Every other decoder refuses the frame.
			for _, ft := range frameTypes {
				if ft == typeNames[v.Type] {
					continue
				}
				if _, err := decodeAs(ft, body); !errors.Is(err, ErrBadFrame) {
					t.Errorf("%v decoder on a %s frame: err = %v, want ErrBadFrame", ft, v.Type, err)
				}
			}
			if v.Type != "event" {
				return
			}
			wantData, _ := hex.DecodeString(*v.DataHex)
			m := val.(Message)
			if d := diffBytes(wantData, m.Data); d != "" {
				t.Errorf("data (-want +got):\n%s", d)
			}
			h, err := ParseEvent(body)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if string(h.Channel) != m.Channel || string(h.Event) != m.Event || !bytes.Equal(h.Data, m.Data) ||
				h.ID != m.ID || h.Origin != m.Origin || h.Sender != m.Sender || h.To != m.To || h.Re != m.InReplyTo {
				t.Errorf("ParseEvent and DecodeEvent disagree:\n%+v\n%+v", h, m)
			}
		})
	}
}

func TestVectorsInvalid(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Error == "" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			frame, _, err := readVector(v)
			switch v.Error {
			case "bad_frame":
				if !errors.Is(err, ErrBadFrame) || errors.Is(err, ErrFrameTooBig) {
					t.Fatalf("err = %v, want ErrBadFrame", err)
				}
				var me *MalformedError
				if !errors.As(err, &me) {
					t.Fatalf("err = %T, want a *MalformedError", err)
				}
				if max := max(len(frame)-HeaderLen, 0); me.Offset < 0 || me.Offset > max {
					t.Errorf("offset %d is outside the %d-byte body", me.Offset, max)
				}
				if want, ok := invalidReasons[v.Name]; ok && (me.Offset != want.offset || !strings.Contains(me.Reason, want.reason)) {
					t.Errorf("refused at byte %d for %q; want byte %d, %q", me.Offset, me.Reason, want.offset, want.reason)
				}
			case "frame_too_big":
				if !errors.Is(err, ErrFrameTooBig) || errors.Is(err, ErrBadFrame) {
					t.Fatalf("err = %v, want ErrFrameTooBig", err)
				}
			case "unexpected_eof":
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
				}
			}
		})
	}
}

func TestVectorsEncode(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Error != "" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			val, err := valueOf(v)
			if err != nil {
				t.Fatal(err)
			}
			got := appendFrame(nil, val)
			if *v.Canonical {
				if d := diffBytes(v.Stream, got); d != "" {
					t.Errorf("encoding (-want +got):\n%s", d)
				}
			} else {
				// A vector with extra fields or wide formats encodes
				// shorter, to the same value.
				if len(got) >= len(v.Stream) {
					t.Errorf("encoding is %d bytes, the non-canonical vector %d; want it shorter", len(got), len(v.Stream))
				}
				back, err := decodeAs(typeNames[v.Type], got[HeaderLen:])
				if err != nil {
					t.Fatalf("decoding the encoding: %v", err)
				}
				if !reflect.DeepEqual(back, val) {
					t.Errorf("re-decoded %+v, want %+v", back, val)
				}
			}
			checkMsgpack(t, got[HeaderLen:], genericOf(t, val))
		})
	}
}

// ---------------------------------------------------------------------------
// Cross-check with github.com/vmihailenco/msgpack.

// genericID is what a generic decoder finds for an id that may be
// absent: nil, or its bytes.
func genericID(id [16]byte) any {
	if id == ([16]byte{}) {
		return nil
	}
	return id[:]
}

// genericOf is what a generic msgpack decoder must find in the body of
// v's frame, normalized by normalMsgpack.
func genericOf(tb testing.TB, v any) []any {
	tb.Helper()
	switch v := v.(type) {
	case Hello:
		out := []any{uint64(FrameHello), v.Version, v.ClientID[:], v.Name, v.PID}
		if v.resumes() {
			own := []any{}
			for _, id := range v.Own {
				own = append(own, id[:])
			}
			out = append(out, genericID(v.Resume.Epoch), genericID(v.Resume.After), v.Since, own)
		}
		if v.declares() {
			out = append(out, genericPatterns(v.Interest))
		}
		return out
	case Welcome:
		out := []any{uint64(FrameWelcome), v.Version, v.Node[:], v.Channel, v.MaxFrame, v.PID}
		if v.resumes() {
			out = append(out, v.Epoch[:], genericID(v.From), v.Missed)
		}
		return out
	case ErrorFrame:
		return []any{uint64(FrameError), uint64(v.Code), v.Message}
	case pingValue:
		return []any{uint64(FramePing)}
	case pongValue:
		return []any{uint64(FramePong)}
	case drainValue:
		return []any{uint64(FrameDrain)}
	case Interest:
		return []any{uint64(FrameInterest), v.Seq, genericPatterns(&v)}
	case appliedValue:
		return []any{uint64(FrameApplied), v.Seq}
	case Message:
		var data any
		if len(v.Data) > 0 {
			d := msgpack.NewDecoder(bytes.NewReader(v.Data))
			var err error
			if data, err = d.DecodeInterface(); err != nil {
				tb.Fatalf("data % x: %v", v.Data, err)
			}
		}
		out := []any{uint64(FrameEvent), v.ID[:], v.Origin[:], v.Sender[:], v.Channel, v.Event, normalMsgpack(data)}
		if v.To != uuid.Nil || v.InReplyTo != uuid.Nil {
			for _, id := range []uuid.UUID{v.To, v.InReplyTo} {
				if id == uuid.Nil {
					out = append(out, nil)
				} else {
					out = append(out, id[:])
				}
			}
		}
		return out
	}
	tb.Fatalf("genericOf: %T", v)
	return nil
}

// genericPatterns is what a generic decoder finds for a declaration:
// nil for All, else an array of str.
func genericPatterns(in *Interest) any {
	if in.All {
		return nil
	}
	out := []any{}
	for _, p := range in.Patterns {
		out = append(out, p)
	}
	return out
}

// normalMsgpack maps every integer to uint64 (or int64 when negative) so
// that values decoded from different widths compare equal.
func normalMsgpack(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if rv.Int() < 0 {
			return rv.Int()
		}
		return uint64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint()
	}
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalMsgpack(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalMsgpack(x)
		}
		return out
	}
	return v
}

// checkMsgpack decodes body with vmihailenco/msgpack as one generic value
// and compares it with want.
func checkMsgpack(tb testing.TB, body []byte, want []any) {
	tb.Helper()
	r := bytes.NewReader(body)
	got, err := msgpack.NewDecoder(r).DecodeInterface()
	if err != nil {
		tb.Fatalf("vmihailenco/msgpack cannot decode the body % x: %v", body, err)
	}
	if r.Len() != 0 {
		tb.Errorf("vmihailenco/msgpack left %d bytes of the body after its value", r.Len())
	}
	if norm := normalMsgpack(got); !reflect.DeepEqual(want, norm) {
		tb.Errorf("generic msgpack decoding of the body (-want +got):\n%s", diffLines(fmt.Sprintf("%#v", want), fmt.Sprintf("%#v", norm)))
	}
}

// ---------------------------------------------------------------------------
// Round trips.

func TestRoundTrip(t *testing.T) {
	mapData, err := AppendData(nil, map[string]any{"level": "info", "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	var deep []byte // 1000 nested one-element arrays around nil
	for range 1000 {
		deep = append(deep, 0x91)
	}
	deep = append(deep, 0xc0)
	bin70k := appendBin(nil, bytes.Repeat([]byte{0xab}, 70000))
	ev := Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "log", Data: mapData}
	with := func(f func(*Message)) Message { m := ev; f(&m); return m }

	tests := []struct {
		name string
		in   any
		want any // the decoded value; nil means in
	}{
		{name: "hello", in: Hello{Version: 1, ClientID: testClient, Name: "ncclient", PID: 4242}},
		{name: "hello zero", in: Hello{}},
		{name: "hello max ints", in: Hello{Version: math.MaxUint64, ClientID: testClient, Name: "x", PID: math.MaxUint32 + 1}},
		{name: "hello name 31 bytes fixstr", in: Hello{Version: 1, Name: strings.Repeat("n", 31)}},
		{name: "hello name 32 bytes str8", in: Hello{Version: 1, Name: strings.Repeat("n", 32)}},
		{name: "hello name 255 bytes str8", in: Hello{Version: 1, Name: strings.Repeat("n", 255)}},
		{name: "hello name 256 bytes str16", in: Hello{Version: 1, Name: strings.Repeat("n", 256)}},
		{name: "hello name 65535 bytes str16", in: Hello{Version: 1, Name: strings.Repeat("n", 65535)}},
		{name: "hello name 65536 bytes str32", in: Hello{Version: 1, Name: strings.Repeat("n", 65536)}},
		{name: "hello name not UTF-8", in: Hello{Version: 1, Name: "\xff\xfe\x00"}},
		{name: "welcome", in: Welcome{Version: 1, Node: testNode, Channel: "log", MaxFrame: DefaultMaxFrame, PID: 1234}},
		{name: "welcome int widths 127 128 255", in: Welcome{Version: 127, MaxFrame: 128, PID: 255}},
		{name: "welcome int widths 256 65535 65536", in: Welcome{Version: 256, MaxFrame: 65535, PID: 65536}},
		{name: "welcome int widths uint32 edge", in: Welcome{Version: math.MaxUint32, MaxFrame: math.MaxUint32 + 1, PID: math.MaxUint64}},
		{name: "error protocol", in: ErrorFrame{Code: CodeProtocol, Message: "unexpected hello frame"}},
		{name: "error handshake", in: ErrorFrame{Code: CodeHandshake, Message: "no hello within 5s"}},
		{name: "error max code empty message", in: ErrorFrame{Code: math.MaxUint16}},
		{name: "event map", in: ev},
		{name: "event nil data", in: with(func(m *Message) { m.Data = nil }), want: with(func(m *Message) { m.Data = []byte{0xc0} })},
		{name: "event 300-byte name", in: with(func(m *Message) { m.Event = strings.Repeat("e", 300) })},
		{name: "event empty strings", in: with(func(m *Message) { m.Channel, m.Event = "", "" })},
		{name: "event deep data", in: with(func(m *Message) { m.Data = deep })},
		{name: "event bin32 data", in: with(func(m *Message) { m.Data = bin70k })},
		{name: "event zero ids", in: with(func(m *Message) { m.ID, m.Origin, m.Sender = uuid.UUID{}, uuid.UUID{}, uuid.UUID{} })},
		{name: "hello v4 declaring patterns", in: hello4(&Interest{Patterns: []string{"log", "disk-.*"}})},
		{name: "hello v4 declaring All", in: hello4(&Interest{All: true})},
		{name: "hello v4 declaring no pattern", in: hello4(&Interest{}), want: hello4(&Interest{Patterns: []string{}})},
		{name: "hello v4 declaring nothing", in: hello4(nil)},
		{name: "hello v4 seq is not sent", in: hello4(&Interest{Seq: 9, All: true}), want: hello4(&Interest{All: true})},
		{name: "hello v4 resuming and declaring", in: func() Hello {
			h := hello4(&Interest{Patterns: []string{"a"}})
			h.Resume, h.Since, h.Own = Cursor{Epoch: testNode, After: testID}, 0, [][16]byte{testClient}
			return h
		}()},
		{name: "hello v4 asking history and declaring", in: func() Hello { h := hello4(&Interest{All: true}); h.Since = 5000; return h }()},
		{name: "hello v3 has no interest", in: func() Hello { h := hello4(&Interest{All: true}); h.Version = 3; return h }(),
			want: func() Hello { h := hello4(nil); h.Version = 3; return h }()},
		{name: "interest", in: Interest{Seq: 1, Patterns: []string{"log", "disk-.*", "cpu"}}},
		{name: "interest All", in: Interest{Seq: 2, All: true}},
		{name: "interest All with patterns", in: Interest{Seq: 2, All: true, Patterns: []string{"x"}}, want: Interest{Seq: 2, All: true}},
		{name: "interest none", in: Interest{Seq: 3}, want: Interest{Seq: 3, Patterns: []string{}}},
		{name: "interest max seq", in: Interest{Seq: math.MaxUint64, Patterns: []string{""}}},
		{name: "interest at the limits", in: Interest{Seq: 4, Patterns: atLimits}},
		{name: "applied", in: appliedValue{1}},
		{name: "applied 0", in: appliedValue{0}},
		{name: "applied max seq", in: appliedValue{math.MaxUint64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.in
			}
			prefix := []byte("keep")
			frame := appendFrame(slices.Clip(prefix), tt.in)
			if !bytes.HasPrefix(frame, prefix) {
				t.Fatalf("the encoder overwrote dst: % x", frame[:4])
			}
			frame = frame[len(prefix):]
			if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-HeaderLen {
				t.Fatalf("length prefix %d, body is %d bytes", n, len(frame)-HeaderLen)
			}
			body := frame[HeaderLen:]
			typ, err := TypeOf(body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAs(typ, body)
			if err != nil {
				t.Fatalf("decoding as %v: %v", typ, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip (-want +got):\n%s", diffLines(fmt.Sprintf("%+v", want), fmt.Sprintf("%+v", got)))
			}
			for _, other := range frameTypes {
				if other == typ {
					continue
				}
				if _, err := decodeAs(other, body); !errors.Is(err, ErrBadFrame) {
					t.Errorf("the %v decoder on a %v frame: err = %v, want ErrBadFrame", other, typ, err)
				}
			}
			// Encoding the decoded value again gives the same bytes.
			if d := diffBytes(frame, appendFrame(nil, got)); d != "" {
				t.Errorf("re-encoding (-want +got):\n%s", d)
			}
			if m, ok := got.(Message); ok {
				h, err := ParseEvent(body)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(h.Data, m.Data) || string(h.Event) != m.Event || string(h.Channel) != m.Channel {
					t.Errorf("ParseEvent %+v disagrees with DecodeEvent %+v", h, m)
				}
			}
			checkMsgpack(t, body, genericOf(t, want))
		})
	}
}

// hello4 is a Hello of version 4 with the interest given.
func hello4(in *Interest) Hello {
	return Hello{Version: 4, ClientID: testClient, Name: "ncclient", PID: 4242, Interest: in}
}

// atLimits is a declaration as large as the limits allow: MaxPatterns
// patterns, one of MaxPatternLen bytes (str16), the others short.
var atLimits = func() []string {
	ps := make([]string, MaxPatterns)
	for i := range ps {
		ps[i] = fmt.Sprintf("event-%d", i)
	}
	ps[7] = strings.Repeat("é", MaxPatternLen/2)
	return ps
}()

// TestEventAllocs checks the promise of ParseEvent and AppendEvent: no
// copying, no allocation.
func TestEventAllocs(t *testing.T) {
	m := Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "log", Data: []byte{0xc3}}
	buf := AppendEvent(nil, &m)
	if n := testing.AllocsPerRun(100, func() { buf = AppendEvent(buf[:0], &m) }); n != 0 {
		t.Errorf("AppendEvent into a big enough buffer: %v allocations, want 0", n)
	}
	body := buf[HeaderLen:]
	var h EventHeader
	if n := testing.AllocsPerRun(100, func() { h, _ = ParseEvent(body) }); n != 0 {
		t.Errorf("ParseEvent: %v allocations, want 0", n)
	}
	if &h.Data[0] != &body[len(body)-1] {
		t.Errorf("ParseEvent copied the data instead of aliasing the body")
	}
}

// ---------------------------------------------------------------------------
// TypeOf and malformed bodies.

func TestTypeOf(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want FrameType
		bad  bool
	}{
		{"hello", []byte{0x95, 0x01}, FrameHello, false},
		{"welcome array16", []byte{0xdc, 0x00, 0x01, 0x02}, FrameWelcome, false},
		{"event uint8 type", []byte{0x97, 0xcc, 0x03}, FrameEvent, false},
		{"error", []byte{0x93, 0x04}, FrameError, false},
		{"unknown type 200", []byte{0x91, 0xcc, 200}, 200, false},
		{"fixarray of 15, fixint 127", []byte{0x9f, 0x7f}, 127, false},
		{"empty body", []byte{}, 0, true},
		{"not an array", []byte{0x03}, 0, true},
		{"map", []byte{0x81, 0x01, 0x02}, 0, true},
		{"empty array", []byte{0x90, 0x03}, 0, true},
		{"array without type", []byte{0x91}, 0, true},
		{"negative type", []byte{0x91, 0xff}, 0, true},
		{"type 256", []byte{0x91, 0xcd, 0x01, 0x00}, 0, true},
		{"type 259", []byte{0x91, 0xcd, 0x01, 0x03}, 0, true},
		{"type as string", []byte{0x91, 0xa1, '3'}, 0, true},
		{"array count past end", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x03}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TypeOf(tt.body)
			if tt.bad {
				if !errors.Is(err, ErrBadFrame) {
					t.Errorf("TypeOf(% x) = %v, %v; want ErrBadFrame", tt.body, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("TypeOf(% x) = %v, %v; want %v", tt.body, got, err, tt.want)
			}
		})
	}
}

func TestMalformedError(t *testing.T) {
	ev := AppendEvent(nil, &Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "c", Event: "e", Data: []byte{0x92, 0x01, 0xc1}})
	body := ev[HeaderLen:]
	tests := []struct {
		name   string
		body   []byte
		decode func([]byte) error
		offset int
		reason string
	}{
		{"not an array", []byte{0x03}, func(b []byte) error { _, err := DecodeHello(b); return err }, 0, "not an array"},
		{"c1 in data", body, func(b []byte) error { _, err := ParseEvent(b); return err }, len(body) - 1, "invalid msgpack type byte"},
		{"wrong frame type", body, func(b []byte) error { _, err := DecodeWelcome(b); return err }, 1, "want welcome frame, got event"},
		{"frame type 259", []byte{0x97, 0xcd, 0x01, 0x03}, func(b []byte) error { _, err := ParseEvent(b); return err }, 1, "frame type 259"},
		{"missing field", []byte{0x92, 0x01, 0x01}, func(b []byte) error { _, err := DecodeHello(b); return err }, 0, "has 1 fields, want at least 4"},
		{"uuid of 15 bytes", slices.Concat([]byte{0x97, 0x03, 0xc4, 0x0f}, testID[:15]), func(b []byte) error { _, err := DecodeEvent(b); return err }, 2, "id: want 16 bytes, got 15"},
		{"empty array", []byte{0x90, 0x03}, func(b []byte) error { _, err := ParseEvent(b); return err }, 0, "empty array"},
		{"bytes after array", []byte{0x93, 0x04, 0x01, 0xa0, 0xc0}, func(b []byte) error { _, err := DecodeError(b); return err }, 4, "bytes after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.body)
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *MalformedError", err)
			}
			if !errors.Is(err, ErrBadFrame) || errors.Is(err, ErrFrameTooBig) {
				t.Errorf("errors.Is: %v should match ErrBadFrame only", err)
			}
			if me.Offset != tt.offset || !strings.Contains(me.Reason, tt.reason) {
				t.Errorf("got offset %d, reason %q; want offset %d, reason containing %q", me.Offset, me.Reason, tt.offset, tt.reason)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("byte %d", tt.offset)) {
				t.Errorf("message %q does not name the offset", err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// FrameReader.

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// errReader returns its bytes, then err.
type errReader struct {
	b   []byte
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.b) == 0 {
		return 0, e.err
	}
	n := copy(p, e.b)
	e.b = e.b[n:]
	return n, nil
}

func TestFrameReaderStream(t *testing.T) {
	values := []any{
		Hello{Version: 1, ClientID: testClient, Name: "a", PID: 1},
		Welcome{Version: 1, Node: testNode, Channel: "log", MaxFrame: 1 << 20, PID: 2},
		Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "x", Data: []byte{0xc0}},
		Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: strings.Repeat("y", 300), Data: appendStr(nil, strings.Repeat("z", 5000))},
		ErrorFrame{Code: CodeShutdown, Message: "server shutting down"},
	}
	var stream []byte
	var frames [][]byte
	for _, v := range values {
		f := appendFrame(nil, v)
		frames = append(frames, f)
		stream = append(stream, f...)
	}
	readers := []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(stream) }},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) }},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			fr := NewFrameReader(bufio.NewReaderSize(rd.r(), 16), DefaultMaxFrame)
			var got [][]byte
			for {
				f, err := fr.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", len(got), err)
				}
				got = append(got, f)
			}
			if len(got) != len(frames) {
				t.Fatalf("read %d frames, want %d", len(got), len(frames))
			}
			for i := range frames {
				if d := diffBytes(frames[i], got[i]); d != "" {
					t.Errorf("frame %d (-want +got):\n%s", i, d)
				}
			}
			// Each frame is the caller's: it does not share memory with
			// the next.
			got[0][HeaderLen] ^= 0xff
			if got[1][HeaderLen] != frames[1][HeaderLen] {
				t.Errorf("changing one frame changed another")
			}
			if _, err := fr.ReadFrame(); err != io.EOF {
				t.Errorf("ReadFrame after the end: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	hello := appendFrame(nil, Hello{Version: 1, ClientID: testClient, Name: "n", PID: 1})
	readErr := errors.New("boom")
	tests := []struct {
		name  string
		r     io.Reader
		max   int
		check func(error) bool
		want  string
	}{
		{"empty stream", bytes.NewReader(nil), 1 << 20, func(err error) bool { return err == io.EOF }, "io.EOF"},
		{"end inside the prefix", bytes.NewReader([]byte{0, 0}), 1 << 20, func(err error) bool { return err == io.ErrUnexpectedEOF }, "io.ErrUnexpectedEOF"},
		{"end inside the body", bytes.NewReader(hello[:len(hello)-1]), 1 << 20, func(err error) bool { return err == io.ErrUnexpectedEOF }, "io.ErrUnexpectedEOF"},
		{"end right after the prefix", bytes.NewReader(hello[:HeaderLen]), 1 << 20, func(err error) bool { return err == io.ErrUnexpectedEOF }, "io.ErrUnexpectedEOF"},
		{"empty frame", bytes.NewReader([]byte{0, 0, 0, 0, 0x91, 0x01}), 1 << 20, func(err error) bool { return errors.Is(err, ErrBadFrame) }, "ErrBadFrame"},
		{"one over the limit", bytes.NewReader(hello), len(hello) - HeaderLen - 1, func(err error) bool { return errors.Is(err, ErrFrameTooBig) && !errors.Is(err, ErrBadFrame) }, "ErrFrameTooBig"},
		{"limit 0 means the default", bytes.NewReader([]byte{0x00, 0x10, 0x00, 0x01}), 0, func(err error) bool { return errors.Is(err, ErrFrameTooBig) }, "ErrFrameTooBig"},
		{"4 GiB declared", bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), MaxFrameLimit, func(err error) bool { return errors.Is(err, ErrFrameTooBig) }, "ErrFrameTooBig"},
		{"read error in the prefix", &errReader{[]byte{0}, readErr}, 1 << 20, func(err error) bool { return errors.Is(err, readErr) }, "the reader's error"},
		{"read error in the body", &errReader{hello[:10], readErr}, 1 << 20, func(err error) bool { return errors.Is(err, readErr) }, "the reader's error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFrameReader(bufio.NewReader(tt.r), tt.max).ReadFrame()
			if !tt.check(err) {
				t.Errorf("ReadFrame = % x, %v; want %s", f, err, tt.want)
			}
			if f != nil {
				t.Errorf("ReadFrame returned %d bytes with its error", len(f))
			}
		})
	}
}

func TestFrameReaderLimit(t *testing.T) {
	hello := appendFrame(nil, Hello{Version: 1, ClientID: testClient, Name: "n", PID: 1})
	size := len(hello) - HeaderLen
	t.Run("limit is inclusive", func(t *testing.T) {
		if _, err := NewFrameReader(bufio.NewReader(bytes.NewReader(hello)), size).ReadFrame(); err != nil {
			t.Errorf("a %d-byte body with limit %d: %v", size, size, err)
		}
	})
	t.Run("SetMax", func(t *testing.T) {
		fr := NewFrameReader(bufio.NewReader(bytes.NewReader(slices.Concat(hello, hello))), size)
		if _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		fr.SetMax(size - 1)
		if _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameTooBig) {
			t.Errorf("after SetMax(%d): %v, want ErrFrameTooBig", size-1, err)
		}
	})
	t.Run("refused before reading the body", func(t *testing.T) {
		// The declared body is there in full; the reader must not
		// consume it, only the prefix (and what bufio reads ahead).
		huge := make([]byte, HeaderLen+4096)
		binary.BigEndian.PutUint32(huge, 4096)
		cr := &countReader{r: bytes.NewReader(huge)}
		_, err := NewFrameReader(bufio.NewReaderSize(cr, 16), 4095).ReadFrame()
		if !errors.Is(err, ErrFrameTooBig) {
			t.Fatalf("err = %v, want ErrFrameTooBig", err)
		}
		if cr.n > 16 {
			t.Errorf("read %d bytes of the stream; a refused frame should cost the prefix only", cr.n)
		}
	})
	t.Run("refused without allocating", func(t *testing.T) {
		// A 64 MiB declared length one over the limit: were it
		// allocated, TotalAlloc would grow by 64 MiB per call.
		prefix := binary.BigEndian.AppendUint32(nil, MaxFrameLimit+1)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			_, err := NewFrameReader(bufio.NewReaderSize(bytes.NewReader(prefix), 16), MaxFrameLimit).ReadFrame()
			if !errors.Is(err, ErrFrameTooBig) {
				t.Fatalf("err = %v, want ErrFrameTooBig", err)
			}
		}
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
			t.Errorf("refusing 10 oversized frames allocated %d bytes", grown)
		}
	})
}

// ---------------------------------------------------------------------------
// Event data.

type testPayload struct {
	Level  string         `json:"level"`
	Count  int            `json:"count"`
	Tags   []string       `json:"tags"`
	Extra  map[string]int `json:"extra,omitempty"`
	Secret string         `json:"-"`
	Both   string         `msgpack:"mp" json:"js"`
	Plain  bool
}

func TestAppendData(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want []byte // the exact encoding; nil to skip that check
		gen  any    // what a generic decoder finds, normalized; nil to skip
		bad  bool
	}{
		{name: "nil", in: nil, want: []byte{0xc0}},
		{name: "raw map", in: RawData{0x81, 0xa1, 'a', 0x01}, want: []byte{0x81, 0xa1, 'a', 0x01}},
		{name: "raw nil", in: RawData{0xc0}, want: []byte{0xc0}},
		{name: "raw nested", in: RawData{0x92, 0x91, 0x90, 0xc4, 0x01, 0xff}, want: []byte{0x92, 0x91, 0x90, 0xc4, 0x01, 0xff}},
		{name: "raw empty", in: RawData{}, bad: true},
		{name: "raw nil slice", in: RawData(nil), bad: true},
		{name: "raw c1", in: RawData{0xc1}, bad: true},
		{name: "raw two values", in: RawData{0x01, 0x02}, bad: true},
		{name: "raw truncated array", in: RawData{0x92, 0x01}, bad: true},
		{name: "raw truncated str", in: RawData{0xa5, 'a', 'b'}, bad: true},
		{name: "raw count past end", in: RawData{0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01}, bad: true},
		{name: "raw bin32", in: RawData{0xc6, 0, 0, 0, 2, 1, 2}, want: []byte{0xc6, 0, 0, 0, 2, 1, 2}},
		{name: "raw bin32 short", in: RawData{0xc6, 0, 0, 0, 3, 1, 2}, bad: true},
		{name: "raw bin32 long", in: RawData{0xc6, 0, 0, 0, 1, 1, 2}, bad: true},
		{name: "raw bin32 head cut", in: RawData{0xc6, 0, 0}, bad: true},
		{name: "raw str16", in: RawData{0xda, 0, 1, 'x'}, want: []byte{0xda, 0, 1, 'x'}},
		{name: "compact small int", in: int64(1), want: []byte{0x01}},
		{name: "compact 300", in: 300, want: []byte{0xcd, 0x01, 0x2c}},
		{name: "string", in: "hi", want: []byte{0xa2, 'h', 'i'}},
		{name: "bytes are bin", in: []byte{1, 2}, want: []byte{0xc4, 0x02, 0x01, 0x02}},
		{name: "struct by json tags", in: testPayload{Level: "warn", Count: 2, Tags: []string{"a"}, Secret: "s", Both: "b", Plain: true},
			gen: map[string]any{"level": "warn", "count": uint64(2), "tags": []any{"a"}, "mp": "b", "Plain": true}},
		{name: "map", in: map[string]any{"k": []any{1, "two", nil}}, gen: map[string]any{"k": []any{uint64(1), "two", nil}}},
		{name: "channel cannot be encoded", in: make(chan int), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, 3, 64)
			copy(dst, "pre")
			out, err := AppendData(dst, tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("AppendData(%#v) = % x, want an error", tt.in, out)
				}
				if string(out) != "pre" {
					t.Errorf("after an error dst is %q, want %q", out, "pre")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, []byte("pre")) {
				t.Fatalf("AppendData changed dst: %q", out[:3])
			}
			data := out[3:]
			if tt.want != nil {
				if d := diffBytes(tt.want, data); d != "" {
					t.Errorf("encoding (-want +got):\n%s", d)
				}
			}
			// The encoding is one msgpack value for both decoders.
			r := reader{b: data}
			if r.skipValue("data"); r.err != nil || r.off != len(data) {
				t.Errorf("skipValue on % x: off %d, err %v", data, r.off, r.err)
			}
			var gen any
			if err := msgpack.Unmarshal(data, &gen); err != nil {
				t.Fatalf("vmihailenco/msgpack: %v", err)
			}
			if tt.gen != nil && !reflect.DeepEqual(tt.gen, normalMsgpack(gen)) {
				t.Errorf("generic decoding (-want +got):\n%s", diffLines(fmt.Sprintf("%#v", tt.gen), fmt.Sprintf("%#v", normalMsgpack(gen))))
			}
			// The data survives an event frame.
			frame := AppendEvent(nil, &Message{Event: "e", Data: data})
			m, err := DecodeEvent(frame[HeaderLen:])
			if err != nil {
				t.Fatal(err)
			}
			if d := diffBytes(data, m.Data); d != "" {
				t.Errorf("data through an event frame (-want +got):\n%s", d)
			}
		})
	}
}

func TestMessageDecodeStruct(t *testing.T) {
	in := testPayload{Level: "warn", Count: -7, Tags: []string{"a", "b"}, Extra: map[string]int{"x": 1}, Secret: "never sent", Both: "b", Plain: true}
	data, err := AppendData(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	frame := AppendEvent(nil, &Message{ID: testID, Event: "log", Data: data})
	m, err := DecodeEvent(frame[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	var got testPayload
	if err := DecodeData(m.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Secret = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Message.Decode (-want +got):\n%s", diffLines(fmt.Sprintf("%+v", want), fmt.Sprintf("%+v", got)))
	}
	// A struct that differs only in tags decodes by the json names.
	var other struct {
		L string `json:"level"`
		C int    `msgpack:"count"`
	}
	if err := DecodeData(m.Data, &other); err != nil || other.L != "warn" || other.C != -7 {
		t.Errorf("decoding into another struct: %+v, %v", other, err)
	}
	if err := DecodeData([]byte{0xa5, 'x'}, &got); err == nil {
		t.Errorf("decoding truncated data: no error")
	}
}

// TestProtocolDoc keeps PROTOCOL.md and testdata/frames together: each
// hex example on the page is a vector file's bytes, the examples cover
// every frame type, and the page names every vector.
func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	vs := loadVectors(t)
	byName := map[string]vector{}
	for _, v := range vs {
		byName[v.Name] = v
	}
	shown := map[FrameType]bool{}
	blocks := strings.Split(string(doc), "```hex\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("PROTOCOL.md has no hex examples")
	}
	for i, blk := range blocks {
		end := strings.Index(blk, "```")
		if end < 0 {
			t.Fatalf("hex example %d is not closed", i)
		}
		blk = blk[:end]
		first, _, _ := strings.Cut(blk, "\n")
		name, ok := strings.CutPrefix(first, "# testdata/frames/")
		name, ok2 := strings.CutSuffix(name, ".hex")
		if !ok || !ok2 {
			t.Errorf("hex example %d does not start with the vector it shows: %q", i, first)
			continue
		}
		v, ok := byName[name]
		if !ok {
			t.Errorf("hex example %d shows %s, which is not a vector", i, name)
			continue
		}
		got, err := parseHex(blk)
		if err != nil {
			t.Fatalf("hex example %s: %v", name, err)
		}
		if d := diffBytes(v.Stream, got); d != "" {
			t.Errorf("PROTOCOL.md's example %s differs from the vector file (-want +got):\n%s", name, d)
		}
		if v.Error == "" {
			shown[typeNames[v.Type]] = true
		}
	}
	for _, ft := range frameTypes {
		if !shown[ft] {
			t.Errorf("PROTOCOL.md has no worked example of a %v frame", ft)
		}
	}
	for _, v := range vs {
		if !strings.Contains(string(doc), "`"+v.Name+"`") {
			t.Errorf("PROTOCOL.md does not name vector %s", v.Name)
		}
	}
}

// TestFrameReaderGrowsLazily declares a 32 MiB frame and sends 10 bytes of
// it: the reader must not have allocated the 32 MiB.
func TestFrameReaderGrowsLazily(t *testing.T) {
	in := append([]byte{0x02, 0x00, 0x00, 0x00}, make([]byte, 10)...)
	fr := NewFrameReader(bufio.NewReader(bytes.NewReader(in)), MaxFrameLimit)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := fr.ReadFrame()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Errorf("ReadFrame = %v, want io.ErrUnexpectedEOF", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("reading 10 bytes of a declared 32 MiB frame allocated %d bytes", n)
	}
}

// TestFrameReaderLargeFrame reads a frame larger than the eager
// allocation, in pieces, intact.
func TestFrameReaderLargeFrame(t *testing.T) {
	m := Message{Channel: "A", Event: "big"}
	m.Data, _ = AppendData(nil, bytes.Repeat([]byte("0123456789"), 100_000))
	frame := AppendEvent(nil, &m)
	fr := NewFrameReader(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(frame)), 16), MaxFrameLimit)
	got, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("ReadFrame: %d bytes, %v; want the %d-byte frame intact", len(got), err, len(frame))
	}
}

// TestReadFrameWith checks that frames are read into the buffer the
// caller gives when it is large enough, and allocated otherwise, with
// the same bytes either way.
func TestReadFrameWith(t *testing.T) {
	small := AppendEvent(nil, &Message{Channel: "A", Event: "e", Data: []byte{0xc3}})
	big := AppendEvent(nil, &Message{Channel: "A", Event: "e", Data: append([]byte{0xc6, 0, 1, 0, 0}, make([]byte, 1<<16)...)})
	for _, tt := range []struct {
		name     string
		frame    []byte
		bufSize  int  // the buffer get gives; 0 means get returns nil
		wantCall bool // whether get is called
		wantBuf  bool // whether the frame is read into the buffer
	}{
		{"fits", small, 256, true, true},
		{"exactly", small, len(small), true, true},
		{"too small a buffer", small, len(small) - 1, true, false},
		{"no buffer", small, 0, true, false},
		{"over 64 KiB", big, 1 << 17, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, buffered := range []int{16, 1 << 18} { // read in pieces, or found whole in the buffer
				var buf []byte
				if tt.bufSize > 0 {
					buf = make([]byte, tt.bufSize)
				}
				called := 0
				get := func(size int) []byte {
					called++
					if size != len(tt.frame) {
						t.Errorf("get(%d), want get(%d)", size, len(tt.frame))
					}
					return buf
				}
				fr := NewFrameReader(bufio.NewReaderSize(bytes.NewReader(tt.frame), buffered), 1<<20)
				if buffered > len(tt.frame) {
					fr.r.Peek(len(tt.frame))
				}
				got, err := fr.ReadFrameWith(get)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.frame) {
					t.Errorf("read %d bytes, not the %d-byte frame", len(got), len(tt.frame))
				}
				if want := b2i(tt.wantCall); called != want {
					t.Errorf("get called %d times, want %d", called, want)
				}
				if inBuf := buf != nil && &got[0] == &buf[0]; inBuf != tt.wantBuf {
					t.Errorf("read into the buffer given: %v, want %v", inBuf, tt.wantBuf)
				}
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
