package wire

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helloBody builds a Hello body by hand: the four fields of version 1
// for version v, then tail, each already encoded.
func helloBody(v uint64, tail ...[]byte) []byte {
	b := appendArrayHeader(nil, 5+len(tail))
	b = append(b, byte(FrameHello))
	b = appendUint(b, v)
	b = appendBin(b, testClient[:])
	b = appendStr(b, "n")
	b = appendUint(b, 1)
	for _, t := range tail {
		b = append(b, t...)
	}
	return b
}

// patternList encodes a list of patterns as a Hello or an Interest
// frame carries it.
func patternList(ps ...string) []byte {
	b := appendArrayHeader(nil, len(ps))
	for _, p := range ps {
		b = appendStr(b, p)
	}
	return b
}

// TestHelloInterestPlace checks that a Hello's interest is read only
// where it stands, after the four resume fields, and only from a Hello
// of version 4 or more: anywhere else the same bytes are extra fields
// of a later version, skipped.
func TestHelloInterestPlace(t *testing.T) {
	nilv, zero, noOwn := []byte{0xc0}, []byte{0x00}, []byte{0x90}
	list := patternList("a", "b.*")
	tests := []struct {
		name string
		body []byte
		want *Interest
	}{
		{"v4, the list in place of the resume epoch", helloBody(4, list), nil},
		{"v4, nil in place of the resume epoch", helloBody(4, nilv), nil},
		{"v4, two fields before the list", helloBody(4, nilv, nilv, list), nil},
		{"v4, resume fields only", helloBody(4, nilv, nilv, zero, noOwn), nil},
		{"v4, resume fields and the list", helloBody(4, nilv, nilv, zero, noOwn, list), &Interest{Patterns: []string{"a", "b.*"}}},
		{"v4, resume fields and nil", helloBody(4, nilv, nilv, zero, noOwn, nilv), &Interest{All: true}},
		{"v4, the list then a later field", helloBody(4, nilv, nilv, zero, noOwn, list, zero), &Interest{Patterns: []string{"a", "b.*"}}},
		{"v5, resume fields and the list", helloBody(5, nilv, nilv, zero, noOwn, list), &Interest{Patterns: []string{"a", "b.*"}}},
		{"v3, resume fields and a list after them", helloBody(3, nilv, nilv, zero, noOwn, list), nil},
		{"v2, a list after the version 1 fields", helloBody(2, list), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := DecodeHello(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.Interest, tt.want) {
				t.Errorf("interest %+v, want %+v", h.Interest, tt.want)
			}
			// What decodes encodes no longer than it came.
			if enc := AppendHello(nil, &h); len(enc)-HeaderLen > len(tt.body) {
				t.Errorf("re-encoded to %d bytes from %d: % x", len(enc)-HeaderLen, len(tt.body), enc[HeaderLen:])
			}
		})
	}
	// An interest that is not a list nor nil, in its place, is refused.
	if _, err := DecodeHello(helloBody(4, nilv, nilv, zero, noOwn, zero)); !errors.Is(err, ErrBadFrame) {
		t.Errorf("a uint for the interest: %v, want ErrBadFrame", err)
	}
}

// TestInterestLimits checks the limits at their edges, in an Interest
// frame and in a Hello, with the reason and the byte each refusal names.
func TestInterestLimits(t *testing.T) {
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = fmt.Sprint("p", i)
	}
	long := strings.Repeat("x", MaxPatternLen)
	tests := []struct {
		name   string
		list   []byte
		offset int // from the list's first byte
		reason string
	}{
		{"MaxPatterns", patternList(many[:MaxPatterns]...), -1, ""},
		{"MaxPatterns+1", patternList(many...), 0, "patterns: 1025, at most 1024"},
		{"MaxPatternLen", patternList("a", long), -1, ""},
		{"MaxPatternLen+1", patternList("a", long+"x"), 3, "pattern 1: 4097 bytes, at most 4096"},
		{"empty pattern", patternList(""), -1, ""},
		{"UTF-8 pattern", patternList("é.*", "日本"), -1, ""},
		{"not UTF-8", patternList("a", "\xc3("), 3, "pattern 1: not UTF-8"},
		{"a surrogate is not UTF-8", patternList("\xed\xa0\x80"), 1, "pattern 0: not UTF-8"},
		{"a pattern that is a uint", append(appendArrayHeader(nil, 1), 0x07), 1, "pattern: not a string"},
		{"a pattern that is nil", append(appendArrayHeader(nil, 1), 0xc0), 1, "pattern: not a string"},
		{"a map for the list", []byte{0x80}, 0, "patterns: not an array"},
		{"a count past the end", []byte{0x93, 0xa1, 'a'}, 1, "patterns: element count past end of frame"},
		{"an array16 count past the end", append([]byte{0xdc, 0x03, 0xe8}, make([]byte, 995)...), 3, "patterns: element count past end of frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			interest := slices.Concat(appendArrayHeader(nil, 3), []byte{byte(FrameInterest), 0x05}, tt.list)
			hello := helloBody(4, []byte{0xc0}, []byte{0xc0}, []byte{0x00}, []byte{0x90}, tt.list)
			for _, c := range []struct {
				frame  string
				body   []byte
				at     int // where the list begins
				decode func([]byte) (*Interest, error)
			}{
				{"interest", interest, 3, func(b []byte) (*Interest, error) { in, err := DecodeInterest(b); return &in, err }},
				{"hello", hello, len(hello) - len(tt.list), func(b []byte) (*Interest, error) { h, err := DecodeHello(b); return h.Interest, err }},
			} {
				in, err := c.decode(c.body)
				if tt.reason == "" {
					if err != nil {
						t.Fatalf("%s: %v", c.frame, err)
					}
					back, err := DecodeInterest(AppendInterest(nil, in)[HeaderLen:])
					if err != nil || !reflect.DeepEqual(&back, in) || in.All || len(in.Patterns) == 0 {
						t.Errorf("%s: decoded %d patterns; encoded and decoded again: %d, %v", c.frame, len(in.Patterns), len(back.Patterns), err)
					}
					continue
				}
				var me *MalformedError
				if !errors.As(err, &me) {
					t.Fatalf("%s: err = %v, want a *MalformedError", c.frame, err)
				}
				if me.Offset != c.at+tt.offset || !strings.Contains(me.Reason, tt.reason) {
					t.Errorf("%s: refused at byte %d for %q; want byte %d, %q", c.frame, me.Offset, me.Reason, c.at+tt.offset, tt.reason)
				}
			}
		})
	}
}

// TestInterestEncoding checks what the encoders write for the three
// kinds of declaration, and that a Hello carries its interest only from
// version 4 on, with the resume fields zero when it does not resume.
func TestInterestEncoding(t *testing.T) {
	tests := []struct {
		name string
		in   Interest
		list []byte
	}{
		{"All", Interest{Seq: 1, All: true}, []byte{0xc0}},
		{"All wins over patterns", Interest{Seq: 1, All: true, Patterns: []string{"a"}}, []byte{0xc0}},
		{"no pattern", Interest{Seq: 1}, []byte{0x90}},
		{"empty list", Interest{Seq: 1, Patterns: []string{}}, []byte{0x90}},
		{"patterns", Interest{Seq: 1, Patterns: []string{"a", "b"}}, []byte{0x92, 0xa1, 'a', 0xa1, 'b'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := slices.Concat([]byte{0x93, 0x08, 0x01}, tt.list)
			if d := diffBytes(want, AppendInterest(nil, &tt.in)[HeaderLen:]); d != "" {
				t.Errorf("Interest frame (-want +got):\n%s", d)
			}
			h := Hello{Version: 4, ClientID: testClient, Name: "n", PID: 1, Interest: &tt.in}
			want = helloBody(4, []byte{0xc0}, []byte{0xc0}, []byte{0x00}, []byte{0x90}, tt.list)
			if d := diffBytes(want, AppendHello(nil, &h)[HeaderLen:]); d != "" {
				t.Errorf("Hello of version 4 (-want +got):\n%s", d)
			}
			h.Version = 3
			if d := diffBytes(helloBody(3), AppendHello(nil, &h)[HeaderLen:]); d != "" {
				t.Errorf("Hello of version 3: the interest is not for it (-want +got):\n%s", d)
			}
		})
	}
	if d := diffBytes([]byte{0x92, 0x09, 0xcd, 0x01, 0x00}, AppendApplied(nil, 256)[HeaderLen:]); d != "" {
		t.Errorf("Applied (-want +got):\n%s", d)
	}
}

// TestProtocolDocVersion holds PROTOCOL.md's title to ProtocolVersion,
// and its table of frame types (§ 4) to the frame types the package
// names: each with its number and name, none missing, none extra.
func TestProtocolDocVersion(t *testing.T) {
	b, err := os.ReadFile("../../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if title := fmt.Sprintf("# netcluster local wire protocol, version %d\n", ProtocolVersion); !strings.HasPrefix(doc, title) {
		t.Errorf("PROTOCOL.md does not begin with %q", title)
	}
	_, sect, ok := strings.Cut(doc, "\n## 4. Frame types\n")
	if !ok {
		t.Fatal("PROTOCOL.md has no section 4")
	}
	sect, _, _ = strings.Cut(sect, "\n### ")
	row := regexp.MustCompile(`(?m)^\| (\d+) \| (\w+) \|`)
	var got, want []string
	for _, m := range row.FindAllStringSubmatch(sect, -1) {
		got = append(got, m[1]+" "+strings.ToLower(m[2]))
	}
	for ft, name := range frameTypeNames {
		if name != "" {
			want = append(want, fmt.Sprint(ft, " ", name))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("PROTOCOL.md § 4 lists the frame types %q; the package has %q", got, want)
	}
}
