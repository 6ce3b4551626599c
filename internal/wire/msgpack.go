package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file holds the few msgpack primitives the frame envelope needs,
// written by hand so that encoding and routing a frame allocate nothing.
// Event data is encoded and decoded with github.com/vmihailenco/msgpack;
// the envelope code here only measures it (skipValue).

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

// reader walks a msgpack encoding held in memory. The first error sticks:
// later reads return zero values, so a decoder checks err once at the end.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = &MalformedError{Offset: r.off, Reason: what}
	}
}

// next returns the next n bytes.
func (r *reader) next(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(what + ": truncated")
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) byte1(what string) byte {
	p := r.next(1, what)
	if p == nil {
		return 0
	}
	return p[0]
}

// sized reads a big-endian length of w bytes.
func (r *reader) sized(w int, what string) int {
	p := r.next(w, what)
	var n uint64
	for _, c := range p {
		n = n<<8 | uint64(c)
	}
	if n > uint64(len(r.b)) { // no length can exceed the whole input
		r.fail(what + ": length past end of frame")
		return 0
	}
	return int(n)
}

func (r *reader) arrayLen(what string) int {
	c := r.byte1(what)
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == 0xdc:
		return r.sized(2, what)
	case c == 0xdd:
		return r.sized(4, what)
	}
	r.off--
	r.fail(what + ": not an array")
	return 0
}

func (r *reader) uint(what string) uint64 {
	c := r.byte1(what)
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		return uint64(c)
	case c >= 0xcc && c <= 0xcf:
		p := r.next(1<<(c-0xcc), what)
		var v uint64
		for _, x := range p {
			v = v<<8 | uint64(x)
		}
		return v
	}
	r.off--
	r.fail(what + ": not an unsigned integer")
	return 0
}

// str returns the bytes of a msgpack str, aliasing the input.
func (r *reader) str(what string) []byte {
	c := r.byte1(what)
	var n int
	switch {
	case r.err != nil:
		return nil
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9:
		n = r.sized(1, what)
	case c == 0xda:
		n = r.sized(2, what)
	case c == 0xdb:
		n = r.sized(4, what)
	default:
		r.off--
		r.fail(what + ": not a string")
		return nil
	}
	return r.next(n, what)
}

// bin returns the bytes of a msgpack bin, aliasing the input.
func (r *reader) bin(what string) []byte {
	c := r.byte1(what)
	var n int
	switch {
	case r.err != nil:
		return nil
	case c == 0xc4:
		n = r.sized(1, what)
	case c == 0xc5:
		n = r.sized(2, what)
	case c == 0xc6:
		n = r.sized(4, what)
	default:
		r.off--
		r.fail(what + ": not binary")
		return nil
	}
	return r.next(n, what)
}

// uuid16 reads a bin of exactly 16 bytes.
func (r *reader) uuid16(what string) (id [16]byte) {
	at := r.off
	p := r.bin(what)
	if r.err == nil && len(p) != 16 {
		r.off = at
		r.fail(fmt.Sprintf("%s: want 16 bytes, got %d", what, len(p)))
	}
	copy(id[:], p)
	return id
}

// optUUID16 reads nil, as the zero id, or a bin of exactly 16 bytes.
func (r *reader) optUUID16(what string) (id [16]byte) {
	if r.err == nil && r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return id
	}
	at := r.off
	if r.err == nil && r.off < len(r.b) {
		switch c := r.b[r.off]; c {
		case 0xc4, 0xc5, 0xc6:
		default:
			r.fail(what + ": want nil or a 16-byte id")
			r.off = at
			return id
		}
	}
	return r.uuid16(what)
}

// skipValue steps over one complete msgpack value of any type and returns
// its encoding. It walks iteratively, so deep nesting cannot exhaust the
// stack, and it checks every declared length against what is left.
func (r *reader) skipValue(what string) []byte {
	start := r.off
	for pending := 1; pending > 0 && r.err == nil; pending-- {
		c := r.byte1(what)
		if r.err != nil {
			break
		}
		var n, items int // n: payload bytes to skip, items: nested values to add
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c&0xf0 == 0x80:
			items = 2 * int(c&0x0f)
		case c&0xf0 == 0x90:
			items = int(c & 0x0f)
		case c&0xe0 == 0xa0:
			n = int(c & 0x1f)
		case c == 0xc4, c == 0xd9:
			n = r.sized(1, what)
		case c == 0xc5, c == 0xda:
			n = r.sized(2, what)
		case c == 0xc6, c == 0xdb:
			n = r.sized(4, what)
		case c == 0xc7:
			n = r.sized(1, what) + 1
		case c == 0xc8:
			n = r.sized(2, what) + 1
		case c == 0xc9:
			n = r.sized(4, what) + 1
		case c == 0xca:
			n = 4
		case c == 0xcb:
			n = 8
		case c >= 0xcc && c <= 0xcf:
			n = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3:
			n = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8:
			n = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			items = r.sized(2, what)
		case c == 0xdd:
			items = r.sized(4, what)
		case c == 0xde:
			items = 2 * r.sized(2, what)
		case c == 0xdf:
			items = 2 * r.sized(4, what)
		default: // 0xc1 is never used
			r.off--
			r.fail(what + ": invalid msgpack type byte")
		}
		r.next(n, what)
		// Every nested value takes at least one byte, so a count larger
		// than what is left is a lie; refuse it before looping on it.
		if items > len(r.b)-r.off {
			r.fail(what + ": element count past end of frame")
		}
		pending += items
	}
	if r.err != nil {
		return nil
	}
	return r.b[start:r.off:r.off]
}
