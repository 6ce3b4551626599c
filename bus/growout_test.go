package bus

import (
	"bytes"
	"testing"
)

// TestGrowOutWithinSendBuffer fills a send batch as a publisher that
// keeps it full does: its capacity must stay within the send buffer, or
// the writer drops the batch instead of keeping it for reuse, and every
// batch grows anew (append's own growth overshoots 4 MiB by 3 %).
func TestGrowOutWithinSendBuffer(t *testing.T) {
	for _, sendBuffer := range []int{4 << 20, 1 << 20, 64 << 10, 1000} {
		frame := bytes.Repeat([]byte{7}, 210)
		var out []byte
		for len(out)+len(frame) <= sendBuffer {
			out = append(growOut(out, len(frame), sendBuffer), frame...)
			if cap(out) > sendBuffer {
				t.Fatalf("send buffer %d: a batch of %d bytes has a capacity of %d", sendBuffer, len(out), cap(out))
			}
		}
		if !bytes.Equal(out, bytes.Repeat([]byte{7}, len(out))) {
			t.Errorf("send buffer %d: the batch's bytes changed as it grew", sendBuffer)
		}
	}
	// One frame larger than the send buffer still fits, in a batch of its
	// own size.
	if out := growOut(nil, 5000, 1000); cap(out) != 5000 {
		t.Errorf("a 5000-byte frame with a send buffer of 1000: capacity %d", cap(out))
	}
}
