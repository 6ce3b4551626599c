package wire

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestFormatsAgreeWithMsgpack holds the type-byte table to
// vmihailenco/msgpack: every type byte, followed by zeros (so every
// length and element is zero), is one value of the same size for both,
// or, for c1 alone, none for either.
func TestFormatsAgreeWithMsgpack(t *testing.T) {
	for c := range 256 {
		t.Run(fmt.Sprintf("%02x", c), func(t *testing.T) {
			in := append([]byte{byte(c)}, make([]byte, 64)...)
			r := reader{b: in}
			v := r.skipValue("value")
			rd := bytes.NewReader(in)
			mpErr := msgpack.NewDecoder(rd).Skip()
			if (r.err == nil) != (mpErr == nil) {
				t.Fatalf("skipValue: %v; msgpack: %v", r.err, mpErr)
			}
			if r.err != nil {
				if c != 0xc1 || !errors.Is(r.err, ErrBadFrame) {
					t.Fatalf("skipValue: %v", r.err)
				}
				return
			}
			if used := len(in) - rd.Len(); used != len(v) {
				t.Errorf("skipValue took %d bytes, msgpack %d", len(v), used)
			}
		})
	}
}

// TestHeadErrors checks what the walker says about a value cut short or
// lying about its size, and where.
func TestHeadErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		in     []byte
		offset int
		reason string
	}{
		{"empty", nil, 0, "data: truncated"},
		{"c1", []byte{0x92, 0x01, 0xc1}, 2, "data: invalid msgpack type byte"},
		{"length cut short", []byte{0xda, 0x00}, 1, "data: truncated"},
		{"str past end", []byte{0xa3, 'a', 'b'}, 1, "data: truncated: payload 3, 2 bytes left"},
		{"length past whole input", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, 5, "data: truncated: length 4294967295, 0 bytes left"},
		{"uint64 cut short", []byte{0xcf, 0x00}, 1, "data: truncated: payload 8, 1 bytes left"},
		{"array count past end", []byte{0x93, 0x01}, 1, "data: element count past end of frame"},
		{"map count past end", []byte{0x82, 0x01, 0x02}, 1, "data: element count past end of frame"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := reader{b: tt.in}
			r.skipValue("data")
			var me *MalformedError
			if !errors.As(r.err, &me) {
				t.Fatalf("err = %v, want a *MalformedError", r.err)
			}
			if me.Offset != tt.offset || me.Reason != tt.reason {
				t.Errorf("offset %d, reason %q; want %d, %q", me.Offset, me.Reason, tt.offset, tt.reason)
			}
		})
	}
}
