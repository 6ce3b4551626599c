package wire

import (
	"strings"
	"testing"
)

// TestParseEventFast checks that the fast path takes the usual frames,
// including every event vector, and reads them as the general path does.
func TestParseEventFast(t *testing.T) {
	m := Message{ID: testID, Origin: testNode, Sender: testClient, Channel: "log", Event: "log"}
	var bodies [][]byte
	for _, data := range []any{nil, benchString, benchMap, RawData{0xc4, 2, 1, 2}, strings.Repeat("x", 300),
		RawData{0xc5, 0, 1, 9}, RawData{0xc6, 0, 0, 0, 2, 1, 2}, RawData{0xa0}, RawData{0xda, 0, 1, 'x'},
		RawData{0xdb, 0, 0, 0, 1, 'x'}, make([]byte, 70000)} {
		d, err := AppendData(nil, data)
		if err != nil {
			t.Fatal(err)
		}
		m.Data = d
		bodies = append(bodies, AppendEvent(nil, &m)[HeaderLen:])
	}
	m.Channel, m.Event = strings.Repeat("c", 64), strings.Repeat("e", 200) // str8 names
	bodies = append(bodies, AppendEvent(nil, &m)[HeaderLen:])
	for i, body := range bodies {
		fast, ok := parseEventFast(body)
		if !ok {
			t.Errorf("body %d: the fast path refused % x", i, body)
			continue
		}
		checkSameHeader(t, body, fast)
	}
	for _, v := range loadVectors(t) {
		if !strings.HasPrefix(v.Name, "event") {
			continue
		}
		body := v.Stream[HeaderLen:]
		if fast, ok := parseEventFast(body); ok {
			checkSameHeader(t, body, fast)
		}
	}
	// Near misses go to the general path.
	body := bodies[1]
	for _, cut := range []int{1, 20, 57, len(body) - 1} {
		if _, ok := parseEventFast(body[:cut]); ok {
			t.Errorf("the fast path took a body cut at %d", cut)
		}
	}
	long := append(append([]byte(nil), body...), 0xc0) // a byte after the array
	if _, ok := parseEventFast(long); ok {
		t.Error("the fast path took a byte after the array")
	}
	// Data of each bin and str width that claims a byte more or less
	// than the body holds, or whose head is cut.
	m.Channel, m.Event = "log", "log"
	for _, data := range []RawData{{0xc5, 0, 2, 9}, {0xc6, 0, 0, 0, 0, 1, 2}, {0xdb, 0, 0, 0, 2, 'x'}, {0xa2, 'x'}} {
		m.Data = data
		if body := AppendEvent(nil, &m)[HeaderLen:]; func() bool { _, ok := parseEventFast(body); return ok }() {
			t.Errorf("the fast path took data % x", data)
		}
	}
	m.Data = RawData{0xc6, 0, 0}
	if _, ok := parseEventFast(AppendEvent(nil, &m)[HeaderLen:]); ok {
		t.Error("the fast path took a bin32 head cut short")
	}
}
