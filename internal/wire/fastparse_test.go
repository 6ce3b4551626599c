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
	for _, data := range []any{nil, benchString, benchMap, RawData{0xc4, 2, 1, 2}, strings.Repeat("x", 300)} {
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
}
