package wire

import (
	"reflect"
	"testing"
)

// TestHotPathAllocs checks that the per-event work of the codec
// allocates nothing: encoding an event, the server's decode (both the
// fast and the general path), the client's decode of a stream of like
// events.
func TestHotPathAllocs(t *testing.T) {
	m := Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "log", Data: []byte{0xc4, 2, 1, 2}}
	frame := AppendEvent(nil, &m)
	body := frame[HeaderLen:]
	// The same event with a second array header byte width: general path.
	wide := append([]byte{0xdc, 0, 7}, body[1:]...)
	if _, ok := parseEventFast(wide); ok {
		t.Fatal("the wide-array body took the fast path")
	}
	if _, err := ParseEvent(wide); err != nil {
		t.Fatal(err)
	}
	var names NameCache
	buf := make([]byte, 0, 256)
	tests := []struct {
		name string
		fn   func()
	}{
		{"AppendEvent", func() { buf = AppendEvent(buf[:0], &m) }},
		{"ParseEvent fast", func() { ParseEvent(body) }},
		{"ParseEvent general", func() { ParseEvent(wide) }},
		{"client decode", func() { names.DecodeEvent(body) }},
	}
	for _, tt := range tests {
		tt.fn() // warm up: the client's name cache fills here
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per event, want 0", tt.name, n)
		}
	}
}

// TestNameCacheDecode checks that the client's decode, which keeps the
// last names, gives what DecodeEvent gives, for plain events and for
// replies, with names that change and names that repeat.
func TestNameCacheDecode(t *testing.T) {
	msgs := []Message{
		{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "a", Data: []byte{0x01}},
		{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "a-response", Data: []byte{0x02},
			To: testClient, InReplyTo: testNode},
		{ID: testNode, Origin: testNode, Sender: testID, Channel: "other", Event: "a-response", Data: []byte{0xc0},
			InReplyTo: testClient},
		{ID: testID, Origin: testNode, Sender: testClient, Channel: "other", Event: "b", Data: []byte{0x03}},
	}
	var names NameCache
	for i, m := range msgs {
		body := AppendEvent(nil, &m)[HeaderLen:]
		want, err := DecodeEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := names.DecodeEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || got.To != want.To || got.InReplyTo != want.InReplyTo || got.To != m.To || got.InReplyTo != m.InReplyTo {
			t.Errorf("event %d: the client decoded %+v, DecodeEvent %+v; sent %+v", i, got, want, m)
		}
	}
}

// TestInterestAllocs checks that the interest frames cost nothing to
// write into a buffer large enough, an Applied nothing to read, and an
// Interest one allocation for the list and one per pattern to read,
// nothing that grows with a declared count.
func TestInterestAllocs(t *testing.T) {
	in := Interest{Seq: 7, Patterns: []string{"log", "disk-.*", "cpu"}}
	h := Hello{Version: InterestVersion, ClientID: testClient, Name: "n", PID: 1, Interest: &in}
	buf := make([]byte, 0, 256)
	applied := AppendApplied(nil, 7)[HeaderLen:]
	interest := AppendInterest(nil, &in)[HeaderLen:]
	all := AppendInterest(nil, &Interest{Seq: 8, All: true})[HeaderLen:]
	tests := []struct {
		name string
		fn   func()
		want float64
	}{
		{"AppendInterest", func() { buf = AppendInterest(buf[:0], &in) }, 0},
		{"AppendApplied", func() { buf = AppendApplied(buf[:0], in.Seq) }, 0},
		{"AppendHello with interest", func() { buf = AppendHello(buf[:0], &h) }, 0},
		{"DecodeApplied", func() { DecodeApplied(applied) }, 0},
		{"DecodeInterest All", func() { DecodeInterest(all) }, 0},
		{"DecodeInterest", func() { DecodeInterest(interest) }, float64(1 + len(in.Patterns))},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != tt.want {
			t.Errorf("%s: %v allocations, want %v", tt.name, n, tt.want)
		}
	}
}
