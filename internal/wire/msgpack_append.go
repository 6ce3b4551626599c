package wire

import (
	"encoding/binary"
	"math"
)

// This file holds the msgpack encoders the frame envelope and the JSON
// transcoder need, written by hand so that encoding a frame allocates
// nothing. Each writes its value in the shortest form msgpack has.
// Event data is encoded with github.com/vmihailenco/msgpack.

// appendContainerHeader appends an array (fix 0x90, wide 0xdc) or map
// (fix 0x80, wide 0xde) header for n elements or pairs.
func appendContainerHeader(dst []byte, fix, wide byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, wide), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, wide+1), uint32(n))
}

func appendArrayHeader(dst []byte, n int) []byte { return appendContainerHeader(dst, 0x90, 0xdc, n) }

func appendMapHeader(dst []byte, n int) []byte { return appendContainerHeader(dst, 0x80, 0xde, n) }

func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// appendInt appends i as an unsigned format when i >= 0, else as the
// shortest signed one.
func appendInt(dst []byte, i int64) []byte {
	switch {
	case i >= 0:
		return appendUint(dst, uint64(i))
	case i >= -32:
		return append(dst, byte(i))
	case i >= math.MinInt8:
		return append(dst, 0xd0, byte(i))
	case i >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(i))
	case i >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(i))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(i))
}

func appendStr(dst []byte, s string) []byte {
	if len(s) < 32 {
		return append(append(dst, 0xa0|byte(len(s))), s...)
	}
	return append(appendSized(dst, 0xd9, len(s)), s...) // str8, str16, str32
}

func appendBin(dst []byte, p []byte) []byte {
	return append(appendSized(dst, 0xc4, len(p)), p...) // bin8, bin16, bin32
}

// appendSized appends the header of a str or bin of n bytes: code8 (str8
// or bin8) and one byte of length, or the next code and two bytes, or the
// one after and four: msgpack numbers each family's three widths in a row.
func appendSized(dst []byte, code8 byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, code8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, code8+1), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, code8+2), uint32(n))
	}
}
