package wire

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ErrBadJSON reports a JSON text message that the server cannot take: not
// JSON, not an object, or an object whose fields are wrong.
var ErrBadJSON = errors.New("channel: bad JSON message")

// JSONEvent is an event of the JSON text protocol (PROTOCOL.md § 10), as
// a JSON client sends it. The fields the original netcluster sent are
// emmiteruuid, channel, broadcast, event and data; id, to and re are this
// server's extensions.
type JSONEvent struct {
	Channel string // "" when the object had none
	Event   string
	Data    []byte    // the data as one msgpack value; nil (c0) when absent or null
	ID      uuid.UUID // the zero UUID when the object had none
	To, Re  uuid.UUID // the zero UUID when absent or null
}

// DecodeJSON decodes one JSON text message, without its NUL terminator:
// exactly one JSON object, optionally surrounded by JSON white space. The
// object's data is translated to msgpack (§ 10.4). Unknown keys are
// ignored; when a key appears twice the last one counts, as in
// JavaScript's JSON.parse.
func DecodeJSON(text []byte) (JSONEvent, error) {
	var ev JSONEvent
	d := json.NewDecoder(bytes.NewReader(text))
	d.UseNumber()
	tok, err := d.Token()
	if err != nil {
		return ev, jsonErr(d, "", err)
	}
	if tok != json.Delim('{') {
		return ev, fmt.Errorf("%w: want a JSON object, got %s", ErrBadJSON, tokenKind(tok))
	}
	var sawEvent bool
	var scratch []byte
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return ev, jsonErr(d, "", err)
		}
		key := tok.(string) // inside an object, Token returns keys as strings
		switch key {
		case "event", "channel":
			s, err := stringField(d, key, false)
			if err != nil {
				return ev, err
			}
			if key == "event" {
				ev.Event, sawEvent = s, true
			} else {
				ev.Channel = s
			}
		case "id", "to", "re":
			s, err := stringField(d, key, key != "id")
			if err != nil {
				return ev, err
			}
			var id uuid.UUID
			if s != "" || key == "id" {
				if id, err = uuid.Parse(s); err != nil || len(s) != 36 {
					return ev, fmt.Errorf("%w: %q: want a UUID such as \"0f8fad5b-d9cb-469f-a165-70867728950e\", got %s", ErrBadJSON, key, Clip(s, 40))
				}
			}
			switch key {
			case "id":
				ev.ID = id
			case "to":
				ev.To = id
			default:
				ev.Re = id
			}
		case "data":
			if ev.Data, err = transcodeValue(d, ev.Data[:0]); err != nil {
				return ev, jsonErr(d, "data", err)
			}
		default: // emmiteruuid, broadcast, and keys of later versions
			if scratch, err = transcodeValue(d, scratch[:0]); err != nil {
				return ev, jsonErr(d, key, err)
			}
		}
	}
	if _, err := d.Token(); err != nil { // the closing brace
		return ev, jsonErr(d, "", err)
	}
	if _, err := d.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more after the object")
		}
		return ev, jsonErr(d, "", err)
	}
	if !sawEvent {
		return ev, fmt.Errorf("%w: no \"event\" key", ErrBadJSON)
	}
	if err := CheckEventName(ev.Event); err != nil {
		return ev, fmt.Errorf("%w: \"event\": %w", ErrBadJSON, err)
	}
	if len(ev.Data) == 0 {
		ev.Data = []byte{0xc0}
	}
	return ev, nil
}

// stringField reads the value of key, which must be a string (or, when
// nullable, null, which gives "").
func stringField(d *json.Decoder, key string, nullable bool) (string, error) {
	tok, err := d.Token()
	if err != nil {
		return "", jsonErr(d, key, err)
	}
	switch v := tok.(type) {
	case string:
		return v, nil
	case nil:
		if nullable {
			return "", nil
		}
	}
	return "", fmt.Errorf("%w: %q: want a string, got %s", ErrBadJSON, key, tokenKind(tok))
}

func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

func jsonErr(d *json.Decoder, key string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	where := fmt.Sprintf("at byte %d", d.InputOffset())
	if key != "" {
		where = fmt.Sprintf("%q, %s", key, where)
	}
	return fmt.Errorf("%w: %s: %v", ErrBadJSON, where, err)
}

// transcodeValue reads one JSON value from d and appends it to dst as
// msgpack. It walks iteratively, so deep nesting cannot exhaust the stack.
// msgpack writes a container's element count before its elements, so
// each container gets a 5-byte placeholder, the widest header, and a
// last pass writes the headers in their shortest form, moving the bytes
// between them forward. Memory stays near the size of the output.
func transcodeValue(d *json.Decoder, dst []byte) ([]byte, error) {
	type container struct {
		at       int  // offset of its placeholder in dst
		children int  // direct children, keys and values alike
		isMap    bool // a JSON object
	}
	var all []container // in the order opened, which is the order in dst
	var open []int      // indexes into all of the containers not yet closed
	for {
		tok, err := d.Token()
		if err != nil {
			return dst, err
		}
		closing := tok == json.Delim(']') || tok == json.Delim('}')
		if len(open) > 0 && !closing {
			// A closing delimiter always belongs to the innermost open
			// container; anything else is one of its children.
			all[open[len(open)-1]].children++
		}
		switch v := tok.(type) {
		case json.Delim:
			if closing {
				open = open[:len(open)-1]
			} else {
				open = append(open, len(all))
				all = append(all, container{at: len(dst), isMap: v == '{'})
				dst = append(dst, 0, 0, 0, 0, 0)
			}
		case string:
			dst = appendMsgpackStr(dst, v)
		case json.Number:
			dst = appendNumber(dst, v)
		case bool:
			if v {
				dst = append(dst, 0xc3)
			} else {
				dst = append(dst, 0xc2)
			}
		case nil:
			dst = append(dst, 0xc0)
		}
		if len(open) == 0 {
			break
		}
	}
	if len(all) == 0 {
		return dst, nil
	}
	// Write forward over the placeholders: a header never takes more than
	// its placeholder, so the write offset never passes the read offset.
	w, r := all[0].at, all[0].at
	var hdr [5]byte
	for _, c := range all {
		w += copy(dst[w:], dst[r:c.at])
		var h []byte
		if c.isMap {
			h = appendContainerHeader(hdr[:0], 0x80, 0xde, c.children/2)
		} else {
			h = appendContainerHeader(hdr[:0], 0x90, 0xdc, c.children)
		}
		w += copy(dst[w:], h)
		r = c.at + len(hdr)
	}
	w += copy(dst[w:], dst[r:])
	return dst[:w], nil
}

// appendContainerHeader appends an array (fix 0x90, wide 0xdc) or map
// (fix 0x80, wide 0xde) header in its shortest form.
func appendContainerHeader(dst []byte, fix, wide byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, wide), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, wide+1), uint32(n))
}

// appendMsgpackStr appends s as a msgpack str in its shortest form.
func appendMsgpackStr(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

// appendNumber appends a JSON number as msgpack: an integer that fits in
// 64 bits as the shortest integer format (unsigned for n >= 0, signed
// below), anything else as a float64.
func appendNumber(dst []byte, n json.Number) []byte {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return appendInt(dst, i)
	}
	if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
		return binary.BigEndian.AppendUint64(append(dst, 0xcf), u)
	}
	f, _ := strconv.ParseFloat(string(n), 64) // ±Inf when out of range, as JSON.parse gives
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f))
}

func appendInt(dst []byte, i int64) []byte {
	switch {
	case i >= 0 && i <= 0x7f:
		return append(dst, byte(i))
	case i >= 0 && i <= math.MaxUint8:
		return append(dst, 0xcc, byte(i))
	case i >= 0 && i <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(i))
	case i >= 0 && i <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(i))
	case i >= 0:
		return binary.BigEndian.AppendUint64(append(dst, 0xcf), uint64(i))
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
	dst = appendMsgpackStr(dst, channel)
	dst = appendMsgpackStr(dst, ev.Event)
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
		left  int  // values still to come, keys and values alike
		isMap bool // keys at even positions
		n     int  // values written so far
	}
	var stack []level
	off := 0
	need := func(k int) ([]byte, error) {
		if k < 0 || k > len(b)-off {
			return nil, fmt.Errorf("%w at byte %d", ErrBadFrame, off)
		}
		p := b[off : off+k]
		off += k
		return p, nil
	}
	sized := func(w int) (int, error) {
		p, err := need(w)
		if err != nil {
			return 0, err
		}
		switch w {
		case 1:
			return int(p[0]), nil
		case 2:
			return int(binary.BigEndian.Uint16(p)), nil
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(b)) {
			return 0, fmt.Errorf("%w at byte %d: length past the end", ErrBadFrame, off)
		}
		return int(n), nil
	}
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
		if off >= len(b) {
			return dst, fmt.Errorf("%w at byte %d: value expected", ErrBadFrame, off)
		}
		c := b[off]
		off++
		if key && !(c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb) {
			// JSON keys are strings: a nil, boolean or number key is
			// written as its JSON text inside a string; other keys cannot
			// be said.
			if !(c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3 || (c >= 0xca && c <= 0xd3)) {
				return dst, fmt.Errorf("%w: a map key is not a string, number, boolean or nil", errNotJSON)
			}
			n := scalarLen(b[off-1:])
			if n > len(b)-off+1 {
				return dst, fmt.Errorf("%w at byte %d: map key cut short", ErrBadFrame, off-1)
			}
			dst = append(dst, '"')
			var err error
			if dst, err = appendJSONData(dst, b[off-1:off-1+n]); err != nil {
				return dst, err
			}
			off += n - 1
			dst = append(dst, '"')
			continue
		}
		var err error
		var n int
		switch {
		case c <= 0x7f:
			dst = strconv.AppendUint(dst, uint64(c), 10)
		case c >= 0xe0:
			dst = strconv.AppendInt(dst, int64(int8(c)), 10)
		case c == 0xc0:
			dst = append(dst, "null"...)
		case c == 0xc2:
			dst = append(dst, "false"...)
		case c == 0xc3:
			dst = append(dst, "true"...)
		case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
			n = int(c & 0x0f)
			if c == 0xde {
				n, err = sized(2)
			} else if c == 0xdf {
				n, err = sized(4)
			}
			if err == nil && 2*n > len(b)-off {
				err = fmt.Errorf("%w: map count past the end", ErrBadFrame)
			}
			dst = append(dst, '{')
			stack = append(stack, level{left: 2 * n, isMap: true})
		case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
			n = int(c & 0x0f)
			if c == 0xdc {
				n, err = sized(2)
			} else if c == 0xdd {
				n, err = sized(4)
			}
			if err == nil && n > len(b)-off {
				err = fmt.Errorf("%w: array count past the end", ErrBadFrame)
			}
			dst = append(dst, '[')
			stack = append(stack, level{left: n})
		case c&0xe0 == 0xa0, c == 0xd9, c == 0xda, c == 0xdb:
			n = int(c & 0x1f)
			switch c {
			case 0xd9:
				n, err = sized(1)
			case 0xda:
				n, err = sized(2)
			case 0xdb:
				n, err = sized(4)
			}
			var p []byte
			if err == nil {
				p, err = need(n)
			}
			dst = appendJSONString(dst, p)
		case c == 0xc4, c == 0xc5, c == 0xc6:
			n, err = sized(1 << (c - 0xc4))
			var p []byte
			if err == nil {
				p, err = need(n)
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, p)
			dst = append(dst, '"')
		case c == 0xca:
			var p []byte
			if p, err = need(4); err == nil {
				dst = appendFloat(dst, float64(math.Float32frombits(binary.BigEndian.Uint32(p))), 32)
			}
		case c == 0xcb:
			var p []byte
			if p, err = need(8); err == nil {
				dst = appendFloat(dst, math.Float64frombits(binary.BigEndian.Uint64(p)), 64)
			}
		case c >= 0xcc && c <= 0xcf:
			var p []byte
			if p, err = need(1 << (c - 0xcc)); err == nil {
				var u uint64
				for _, x := range p {
					u = u<<8 | uint64(x)
				}
				dst = strconv.AppendUint(dst, u, 10)
			}
		case c >= 0xd0 && c <= 0xd3:
			var p []byte
			if p, err = need(1 << (c - 0xd0)); err == nil {
				var u uint64
				for _, x := range p {
					u = u<<8 | uint64(x)
				}
				shift := 64 - 8*len(p)
				dst = strconv.AppendInt(dst, int64(u<<shift)>>shift, 10)
			}
		case c >= 0xd4 && c <= 0xd8, c == 0xc7, c == 0xc8, c == 0xc9:
			switch c {
			case 0xc7:
				n, err = sized(1)
			case 0xc8:
				n, err = sized(2)
			case 0xc9:
				n, err = sized(4)
			default:
				n = 1 << (c - 0xd4)
			}
			var p []byte
			if err == nil {
				p, err = need(n + 1)
			}
			if err == nil {
				dst = appendExt(dst, int8(p[0]), p[1:])
			}
		default:
			err = fmt.Errorf("%w at byte %d: invalid msgpack type byte", ErrBadFrame, off-1)
		}
		if err != nil {
			return dst, err
		}
	}
	if off != len(b) {
		return dst, fmt.Errorf("%w at byte %d: bytes after the value", ErrBadFrame, off)
	}
	return dst, nil
}

// scalarLen is the encoded length of the nil, boolean or number that b
// starts with (the only keys appendJSONData renders), or len(b)+1 when it
// is cut short.
func scalarLen(b []byte) int {
	c := b[0]
	n := 1
	switch {
	case c == 0xca:
		n = 5
	case c == 0xcb:
		n = 9
	case c >= 0xcc && c <= 0xcf:
		n = 1 + 1<<(c-0xcc)
	case c >= 0xd0 && c <= 0xd3:
		n = 1 + 1<<(c-0xd0)
	}
	if n > len(b) {
		return len(b) + 1
	}
	return n
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
	data := []byte{0x82, 0xa4, 'c', 'o', 'd', 'e'}
	data = appendInt(data, int64(code))
	data = append(data, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e')
	return appendMsgpackStr(data, reason)
}

// ReadJSONText reads one message up to its NUL terminator and returns it
// without the NUL, appended to buf. A message of more than max bytes is
// refused with ErrFrameTooBig before more than max+1 bytes are held.
// At a clean end of stream between messages it returns io.EOF.
func ReadJSONText(br *bufio.Reader, max int, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice(0)
		if len(buf)+len(chunk) > max+1 || (err != nil && len(buf)+len(chunk) > max) {
			return nil, fmt.Errorf("%w: no NUL within %d bytes of a JSON message", ErrFrameTooBig, max)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
