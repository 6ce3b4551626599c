package wire

import (
	"encoding/binary"
	"fmt"
)

// This file is the one msgpack walker of the package: the table of
// msgpack's type bytes (formats), and a reader that steps over an
// encoding in memory one item at a time (head). The frame decoders, the
// value skipper (skipValue, which validates event data) and the JSON
// transcoder (appendJSONData) all read msgpack through it; nothing else
// in the package looks at a type byte, except the fast path of
// ParseEvent, which matches the exact bytes of one encoding.

// kind is what a msgpack item is, as its type byte says.
type kind uint8

const (
	kindInvalid kind = iota // c1, the one byte msgpack never uses
	kindNil
	kindBool  // the type byte is the value: c2 false, c3 true
	kindUint  // positive fixint (the type byte is the value) or uint8 to uint64
	kindInt   // negative fixint (the type byte is the value) or int8 to int64
	kindFloat // float32 or float64
	kindStr
	kindBin
	kindExt   // the payload is the extension type, then its data
	kindArray // nested items: the elements
	kindMap   // nested items: the keys and values, alternately
)

// format is what a type byte says about the item it begins.
type format struct {
	kind kind
	// width is the size of the big-endian length or count that follows
	// the type byte: 0, 1, 2 or 4 bytes.
	width uint8
	// fixed is added to that length: the payload bytes, elements or
	// pairs that the type byte itself gives (fixstr, fixint, fixext and
	// so on), and for ext formats the extension type's byte.
	fixed uint8
}

// formats is msgpack's table of type bytes, indexed by the byte.
var formats = func() (t [256]format) {
	for c := range t {
		t[c] = formatOf(byte(c))
	}
	return t
}()

// formatOf says what the type byte c means (the msgpack specification's
// "Formats" section).
func formatOf(c byte) format {
	switch {
	case c <= 0x7f:
		return format{kind: kindUint}
	case c <= 0x8f:
		return format{kind: kindMap, fixed: c & 0x0f}
	case c <= 0x9f:
		return format{kind: kindArray, fixed: c & 0x0f}
	case c <= 0xbf:
		return format{kind: kindStr, fixed: c & 0x1f}
	case c >= 0xe0:
		return format{kind: kindInt}
	case c == 0xc0:
		return format{kind: kindNil}
	case c == 0xc2, c == 0xc3:
		return format{kind: kindBool}
	case c >= 0xc4 && c <= 0xc6: // bin8, bin16, bin32
		return format{kind: kindBin, width: 1 << (c - 0xc4)}
	case c >= 0xc7 && c <= 0xc9: // ext8, ext16, ext32
		return format{kind: kindExt, width: 1 << (c - 0xc7), fixed: 1}
	case c == 0xca, c == 0xcb: // float32, float64
		return format{kind: kindFloat, fixed: 4 << (c - 0xca)}
	case c >= 0xcc && c <= 0xcf: // uint8 to uint64
		return format{kind: kindUint, fixed: 1 << (c - 0xcc)}
	case c >= 0xd0 && c <= 0xd3: // int8 to int64
		return format{kind: kindInt, fixed: 1 << (c - 0xd0)}
	case c >= 0xd4 && c <= 0xd8: // fixext1 to fixext16
		return format{kind: kindExt, fixed: 1 + 1<<(c-0xd4)}
	case c >= 0xd9 && c <= 0xdb: // str8, str16, str32
		return format{kind: kindStr, width: 1 << (c - 0xd9)}
	case c == 0xdc, c == 0xdd: // array16, array32
		return format{kind: kindArray, width: 2 << (c - 0xdc)}
	case c == 0xde, c == 0xdf: // map16, map32
		return format{kind: kindMap, width: 2 << (c - 0xde)}
	}
	return format{} // c1
}

// item is one msgpack item as head reads it. It is small enough for the
// compiler to keep in registers, which the hot paths rely on.
type item struct {
	kind kind
	tag  byte // the type byte
	at   int  // where the payload starts: a str's or bin's bytes, a number's, an ext's type and data
	// n is the payload's size; for an array or a map, how many nested
	// items follow it (the elements; the keys and values), as declared,
	// unchecked: see nested.
	n int
}

// payload returns the payload of it, an item of r, aliasing the input.
func (r *reader) payload(it item) []byte {
	if it.kind == kindArray || it.kind == kindMap {
		return nil
	}
	return r.b[it.at : it.at+it.n : it.at+it.n]
}

// uintOf is the value of a kindUint item.
func (r *reader) uintOf(it item) uint64 {
	if it.n == 0 {
		return uint64(it.tag)
	}
	return bigEndian(r.payload(it))
}

// intOf is the value of a kindInt item.
func (r *reader) intOf(it item) int64 {
	if it.n == 0 {
		return int64(int8(it.tag))
	}
	shift := 64 - 8*it.n
	return int64(bigEndian(r.payload(it))<<shift) >> shift
}

// bigEndian reads p, at most 8 bytes, as a big-endian number.
func bigEndian(p []byte) uint64 {
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v
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

// head reads the item at r.off: its type byte, its length or count, and
// its payload, and leaves r.off past them, at its first nested item when
// it has any. Every length is checked against what is left before it is
// used; a declared length or count larger than the whole input is an
// error. Element counts are otherwise the caller's to check (nested),
// so that a frame's type can be read from a body cut short. what names
// the item in an error.
func (r *reader) head(what string) item {
	if r.err != nil {
		return item{}
	}
	if r.off >= len(r.b) {
		r.fail(what + ": truncated")
		return item{}
	}
	c := r.b[r.off]
	f := formats[c]
	if f.kind == kindInvalid {
		r.fail(what + ": invalid msgpack type byte")
		return item{}
	}
	p := r.off + 1
	n := int(f.fixed)
	if w := int(f.width); w > 0 {
		if w > len(r.b)-p {
			r.off = p
			r.fail(what + ": truncated")
			return item{}
		}
		var l uint64
		switch w {
		case 1:
			l = uint64(r.b[p])
		case 2:
			l = uint64(binary.BigEndian.Uint16(r.b[p:]))
		default:
			l = uint64(binary.BigEndian.Uint32(r.b[p:]))
		}
		p += w
		if l > uint64(len(r.b)) { // no length can exceed the whole input
			r.off = p
			r.failLength(what, "length", l, len(r.b)-p)
			return item{}
		}
		n += int(l)
	}
	switch f.kind {
	case kindArray:
		r.off = p
		return item{kind: kindArray, tag: c, at: p, n: n}
	case kindMap:
		r.off = p
		return item{kind: kindMap, tag: c, at: p, n: 2 * n}
	}
	if n > len(r.b)-p {
		r.off = p
		r.failLength(what, "payload", uint64(n), len(r.b)-p)
		return item{}
	}
	r.off = p + n
	return item{kind: f.kind, tag: c, at: p, n: n}
}

// failLength reports a declared length past the end of the input.
func (r *reader) failLength(what, of string, n uint64, left int) {
	r.fail(fmt.Sprintf("%s: truncated: %s %d, %d bytes left", what, of, n, left))
}

// nested returns how many nested items follow it, once it has checked
// that they can: every item takes at least one byte, so a count larger
// than what is left is a lie, refused before anyone loops on it.
func (r *reader) nested(it item, what string) int {
	if it.kind != kindArray && it.kind != kindMap {
		return 0
	}
	if it.n > len(r.b)-r.off {
		r.fail(what + ": element count past end of frame")
		return 0
	}
	return it.n
}

// skipValue steps over one complete msgpack value of any type and returns
// its encoding. It walks iteratively, so deep nesting cannot exhaust the
// stack.
func (r *reader) skipValue(what string) []byte {
	start := r.off
	for pending := 1; pending > 0 && r.err == nil; pending-- {
		pending += r.nested(r.head(what), what)
	}
	if r.err != nil {
		return nil
	}
	return r.b[start:r.off:r.off]
}

// want reads an item that must be of kind k; expect names that kind in
// the error, which points at the item's type byte.
func (r *reader) want(k kind, what, expect string) item {
	if r.err == nil && r.off < len(r.b) && formats[r.b[r.off]].kind != k {
		r.fail(what + ": not " + expect)
		return item{}
	}
	return r.head(what)
}

// arrayLen reads an array header and returns its element count, which
// it does not check against what is left.
func (r *reader) arrayLen(what string) int {
	return r.want(kindArray, what, "an array").n
}

func (r *reader) uint(what string) uint64 {
	return r.uintOf(r.want(kindUint, what, "an unsigned integer"))
}

// str returns the bytes of a msgpack str, aliasing the input.
func (r *reader) str(what string) []byte {
	return r.payload(r.want(kindStr, what, "a string"))
}

// bin returns the bytes of a msgpack bin, aliasing the input.
func (r *reader) bin(what string) []byte {
	return r.payload(r.want(kindBin, what, "binary"))
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
	if r.err == nil && r.off < len(r.b) {
		switch formats[r.b[r.off]].kind {
		case kindNil:
			r.off++
			return id
		case kindBin:
		default:
			r.fail(what + ": want nil or a 16-byte id")
			return id
		}
	}
	return r.uuid16(what)
}
