package bus

import (
	"strings"
	"testing"
)

// TestMessageDecodeError checks that a message whose data cannot be
// decoded says which event it was.
func TestMessageDecodeError(t *testing.T) {
	var s string
	bad := Message{Event: "log", Data: []byte{0xa5, 'x'}}
	if err := bad.Decode(&s); err == nil || !strings.Contains(err.Error(), `"log"`) {
		t.Errorf("decoding truncated data: %v, want an error naming the event", err)
	}
	if got := bad.String(); !strings.HasPrefix(got, "/log <2 bytes: ") {
		t.Errorf("String() = %q, want the size and the error", got)
	}
}
