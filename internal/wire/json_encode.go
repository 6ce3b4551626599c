package wire

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// This file is the JSON text protocol's way out (PROTOCOL.md § 10.3 and
// § 10.5): an event frame becomes a JSON text message for the original
// netcluster's agents, and its msgpack data becomes JSON through the
// package's msgpack walker (msgpack.go).

// AppendJSON appends the JSON text form of an event frame's body,
// followed by its NUL terminator (§ 10.3). It fails when the data holds
// something JSON cannot say (§ 10.5).
func AppendJSON(dst []byte, body []byte) ([]byte, error) {
	ev, err := ParseEvent(body)
	if err != nil {
		return dst, err
	}
	to, re := ev.To, ev.Re
	start := len(dst)
	dst = append(dst, `{"emmiteruuid":"`...)
	dst = appendUUID(dst, ev.Sender)
	dst = append(dst, `","channel":`...)
	dst = appendJSONString(dst, ev.Channel)
	if to == ([16]byte{}) {
		dst = append(dst, `,"broadcast":true,"event":`...)
	} else {
		dst = append(dst, `,"broadcast":false,"event":`...)
	}
	dst = appendJSONString(dst, ev.Event)
	dst = append(dst, `,"data":`...)
	if dst, err = appendJSONData(dst, ev.Data); err != nil {
		return dst[:start], fmt.Errorf("event %q: %w", ev.Event, err)
	}
	dst = append(dst, `,"id":"`...)
	dst = appendUUID(dst, ev.ID)
	dst = append(dst, `","origin":"`...)
	dst = appendUUID(dst, ev.Origin)
	dst = append(dst, '"')
	if to != ([16]byte{}) {
		dst = append(dst, `,"to":"`...)
		dst = appendUUID(dst, to)
		dst = append(dst, '"')
	}
	if re != ([16]byte{}) {
		dst = append(dst, `,"re":"`...)
		dst = appendUUID(dst, re)
		dst = append(dst, '"')
	}
	return append(dst, '}', 0), nil
}

// AppendJSONFrame appends ev as a binary Event frame (PROTOCOL.md § 4.3)
// that entered the bus at node through the client sender. A missing id
// is drawn at random. When ev has "to" or "re", both follow the data as
// the request/reply fields: a 16-byte bin, or nil for the one absent.
func AppendJSONFrame(dst []byte, ev *JSONEvent, node, sender uuid.UUID, channel string) []byte {
	id := ev.ID
	if id == (uuid.UUID{}) {
		id = uuid.New()
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	reply := ev.To != (uuid.UUID{}) || ev.Re != (uuid.UUID{})
	if reply {
		dst = append(dst, 0x99, byte(FrameEvent)) // 9 elements: the type, 6 fields, to, re
	} else {
		dst = append(dst, 0x97, byte(FrameEvent))
	}
	for _, u := range []uuid.UUID{id, node, sender} {
		dst = append(append(dst, 0xc4, 16), u[:]...)
	}
	dst = appendStr(dst, channel)
	dst = appendStr(dst, ev.Event)
	if len(ev.Data) == 0 {
		dst = append(dst, 0xc0)
	} else {
		dst = append(dst, ev.Data...)
	}
	if reply {
		for _, u := range []uuid.UUID{ev.To, ev.Re} {
			if u == (uuid.UUID{}) {
				dst = append(dst, 0xc0)
			} else {
				dst = append(append(dst, 0xc4, 16), u[:]...)
			}
		}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-HeaderLen))
	return dst
}

// appendUUID appends id in its canonical text form, without allocating.
func appendUUID(dst []byte, id [16]byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], id[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], id[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], id[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], id[10:])
	return append(dst, buf[:]...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; control characters, '"' and '\' are
// escaped, and so are U+2028 and U+2029, which some JavaScript parsers
// refuse raw.
func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, "\ufffd"...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// errNotJSON reports msgpack data that JSON cannot carry.
var errNotJSON = errors.New("data has no JSON form")

// appendJSONData appends one msgpack value as JSON text (§ 10.5). It walks
// iteratively, so deep nesting cannot exhaust the stack.
func appendJSONData(dst []byte, b []byte) ([]byte, error) {
	type level struct {
		left  int  // items still to come, keys and values alike
		isMap bool // keys at even positions
		n     int  // items written so far
	}
	var levels [8]level // enough for most data without allocating
	stack := levels[:0]
	r := reader{b: b}
	for first := true; first || len(stack) > 0; first = false {
		key := false
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.left == 0 {
				if top.isMap {
					dst = append(dst, '}')
				} else {
					dst = append(dst, ']')
				}
				stack = stack[:len(stack)-1]
				continue
			}
			switch {
			case top.isMap && top.n%2 == 1:
				dst = append(dst, ':')
			case top.n > 0:
				dst = append(dst, ',')
			}
			key = top.isMap && top.n%2 == 0
			top.n++
			top.left--
		}
		it := r.head("data")
		items := r.nested(it, "data")
		if r.err != nil {
			return dst, r.err
		}
		switch {
		case key && it.kind != kindStr:
			var err error
			if dst, err = appendJSONKey(dst, &r, it); err != nil {
				return dst, err
			}
		case it.kind == kindArray || it.kind == kindMap:
			isMap := it.kind == kindMap
			if isMap {
				dst = append(dst, '{')
			} else {
				dst = append(dst, '[')
			}
			stack = append(stack, level{left: items, isMap: isMap})
		default:
			dst = appendJSONValue(dst, &r, it)
		}
	}
	if r.off != len(b) {
		r.fail("bytes after the data")
		return dst, r.err
	}
	return dst, nil
}

// appendJSONKey writes a map key that is not a str. JSON keys are
// strings: a nil, boolean or number key is written as its JSON text
// inside a string; other keys cannot be said.
func appendJSONKey(dst []byte, r *reader, it item) ([]byte, error) {
	switch it.kind {
	case kindNil, kindBool, kindUint, kindInt, kindFloat:
		dst = append(dst, '"')
		dst = appendJSONValue(dst, r, it)
		return append(dst, '"'), nil
	}
	return dst, fmt.Errorf("%w: a map key is not a string, number, boolean or nil", errNotJSON)
}

// appendJSONValue writes an item of r that is not a container.
func appendJSONValue(dst []byte, r *reader, it item) []byte {
	p := r.payload(it)
	switch it.kind {
	case kindNil:
		return append(dst, "null"...)
	case kindBool:
		if it.tag == 0xc3 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case kindUint:
		return strconv.AppendUint(dst, r.uintOf(it), 10)
	case kindInt:
		return strconv.AppendInt(dst, r.intOf(it), 10)
	case kindFloat:
		if len(p) == 4 {
			return appendFloat(dst, float64(math.Float32frombits(binary.BigEndian.Uint32(p))), 32)
		}
		return appendFloat(dst, math.Float64frombits(binary.BigEndian.Uint64(p)), 64)
	case kindStr:
		return appendJSONString(dst, p)
	case kindBin:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, p)
		return append(dst, '"')
	case kindExt:
		return appendExt(dst, int8(p[0]), p[1:])
	}
	panic("appendJSONValue: a container or an invalid item") // head returns neither here
}

// appendFloat writes a float as JSON: NaN and the infinities, which JSON
// lacks, become null.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// appendExt writes a msgpack extension value: the timestamp (type -1) as
// an RFC 3339 string in UTC, any other type as {"ext": type, "data":
// base64 of its bytes}.
func appendExt(dst []byte, typ int8, p []byte) []byte {
	if typ == -1 {
		var t time.Time
		ok := true
		switch len(p) {
		case 4:
			t = time.Unix(int64(binary.BigEndian.Uint32(p)), 0)
		case 8:
			v := binary.BigEndian.Uint64(p)
			t = time.Unix(int64(v&(1<<34-1)), int64(v>>34))
		case 12:
			t = time.Unix(int64(binary.BigEndian.Uint64(p[4:])), int64(binary.BigEndian.Uint32(p)))
		default:
			ok = false
		}
		if ok {
			dst = append(dst, '"')
			dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
			return append(dst, '"')
		}
	}
	dst = append(dst, `{"ext":`...)
	dst = strconv.AppendInt(dst, int64(typ), 10)
	dst = append(dst, `,"data":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, p)
	return append(dst, `"}`...)
}

// ErrorEventData is the data of the event that tells a JSON client why
// the server closes it: {"code": code, "message": reason} in msgpack.
func ErrorEventData(code ErrorCode, reason string) []byte {
	data := appendMapHeader(nil, 2)
	data = appendStr(data, "code")
	data = appendUint(data, uint64(code))
	data = appendStr(data, "message")
	return appendStr(data, reason)
}
