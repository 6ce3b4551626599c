package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/google/uuid"
)

// ErrBadJSON reports a JSON text message that the server cannot take: not
// JSON, not an object, or an object whose fields are wrong.
var ErrBadJSON = errors.New("netcluster: bad JSON message")

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
			dst = appendStr(dst, v)
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
			h = appendMapHeader(hdr[:0], c.children/2)
		} else {
			h = appendArrayHeader(hdr[:0], c.children)
		}
		w += copy(dst[w:], h)
		r = c.at + len(hdr)
	}
	w += copy(dst[w:], dst[r:])
	return dst[:w], nil
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
