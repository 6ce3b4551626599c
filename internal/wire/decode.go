package wire

import (
	"fmt"
	"math"
)

// openFrame reads the array header and frame type of r's body, and checks
// that the array has at least the fields that type needs. Fields past
// those are allowed, so later versions can append fields. It returns how
// many extra fields follow. r is the caller's, so that decoding does not
// allocate it.
func openFrame(r *reader, want FrameType, fields int) int {
	n := r.arrayLen("frame")
	if r.err == nil && n == 0 {
		r.off = 0
		r.fail("frame: empty array, no frame type")
	}
	at := r.off
	t := r.uint("frame type")
	switch {
	case r.err != nil:
	case t != uint64(want):
		r.off = at
		r.fail(fmt.Sprintf("want %v frame, got %v", want, typeName(t)))
	case n < fields+1:
		r.off = 0
		r.fail(fmt.Sprintf("%v frame has %d fields, want at least %d", want, n-1, fields))
	}
	return n - 1 - fields
}

// typeName names a frame type as read from the wire, where it may be out
// of FrameType's range.
func typeName(t uint64) string {
	if t > math.MaxUint8 {
		return fmt.Sprintf("frame type %d", t)
	}
	return FrameType(t).String()
}

// closeFrame skips the extra fields of a later version and checks that
// nothing follows the array.
func closeFrame(r *reader, extra int) error {
	for i := 0; i < extra && r.err == nil; i++ {
		r.skipValue("extra field")
	}
	if r.err == nil && r.off != len(r.b) {
		r.fail("bytes after the frame's array")
	}
	return r.err
}

// TypeOf returns the type of a frame body without decoding the rest.
func TypeOf(body []byte) (FrameType, error) {
	if len(body) >= 2 && body[0] > 0x90 && body[0] <= 0x9f && body[1] < 0x80 {
		// Every frame of the protocol: a fixarray of 1 to 15 values whose
		// first is a positive fixint.
		return FrameType(body[1]), nil
	}
	r := reader{b: body}
	if n := r.arrayLen("frame"); r.err == nil && n == 0 {
		r.off = 0
		r.fail("frame: empty array, no frame type")
	}
	at := r.off
	t := r.uint("frame type")
	if r.err == nil && t > math.MaxUint8 {
		r.off = at
		r.fail(fmt.Sprintf("frame type %d out of range", t))
	}
	if r.err != nil {
		return 0, r.err
	}
	return FrameType(t), nil
}

// DecodeHello decodes a Hello frame body.
func DecodeHello(body []byte) (Hello, error) {
	var h Hello
	r := &reader{b: body}
	extra := openFrame(r, FrameHello, 4)
	h.Version = r.uint("version")
	h.ClientID = r.uuid16("client id")
	h.Name = string(r.str("name"))
	h.PID = r.uint("pid")
	if h.Version >= ResumeVersion && extra >= helloResumeFields {
		extra = decodeHelloResume(r, &h, extra)
		if h.Version >= InterestVersion {
			// The interest follows the resume fields, never stands
			// in their place.
			extra = decodeHelloInterest(r, &h, extra)
		}
	}
	return h, closeFrame(r, extra)
}

// DecodeWelcome decodes a Welcome frame body.
func DecodeWelcome(body []byte) (Welcome, error) {
	var w Welcome
	r := &reader{b: body}
	extra := openFrame(r, FrameWelcome, 5)
	w.Version = r.uint("version")
	w.Node = r.uuid16("node")
	w.Channel = string(r.str("channel"))
	w.MaxFrame = r.uint("maxframe")
	w.PID = r.uint("pid")
	if w.Version >= ResumeVersion {
		extra = decodeWelcomeResume(r, &w, extra)
	}
	return w, closeFrame(r, extra)
}

// DecodeError decodes an Error frame body.
func DecodeError(body []byte) (ErrorFrame, error) {
	var e ErrorFrame
	r := &reader{b: body}
	extra := openFrame(r, FrameError, 2)
	code := r.uint("code")
	if r.err == nil && code > 0xffff {
		r.fail("error code out of range")
	}
	e.Code = ErrorCode(code)
	e.Message = string(r.str("message"))
	return e, closeFrame(r, extra)
}

// DecodePing checks a Ping frame body. A Ping has no fields; fields a
// later version appends are skipped.
func DecodePing(body []byte) error {
	r := &reader{b: body}
	return closeFrame(r, openFrame(r, FramePing, 0))
}

// DecodePong checks a Pong frame body, as DecodePing does a Ping.
func DecodePong(body []byte) error {
	r := &reader{b: body}
	return closeFrame(r, openFrame(r, FramePong, 0))
}

// ParseEvent decodes an Event frame body without copying it. It checks
// that the data is one well-formed msgpack value, and that the optional
// fields to and re, when present, are each nil or a 16-byte id.
func ParseEvent(body []byte) (EventHeader, error) {
	if h, ok := parseEventFast(body); ok {
		return h, nil
	}
	return parseEventGeneral(body)
}

// parseEventGeneral is ParseEvent for every encoding.
func parseEventGeneral(body []byte) (EventHeader, error) {
	var h EventHeader
	r := &reader{b: body}
	extra := openFrame(r, FrameEvent, 6)
	h.ID = r.uuid16("id")
	h.Origin = r.uuid16("origin")
	h.Sender = r.uuid16("sender")
	h.Channel = r.str("channel")
	h.Event = r.str("event")
	h.Data = r.skipValue("data")
	if extra > 0 {
		h.To = r.optUUID16("to")
		extra--
	}
	if extra > 0 {
		h.Re = r.optUUID16("re")
		extra--
	}
	return h, closeFrame(r, extra)
}

// DecodeEvent decodes an Event frame body into a Message. The message's
// Data aliases body.
func DecodeEvent(body []byte) (Message, error) {
	h, err := ParseEvent(body)
	if err != nil {
		return Message{}, err
	}
	return Message{
		ID:        h.ID,
		Origin:    h.Origin,
		Sender:    h.Sender,
		Channel:   string(h.Channel),
		Event:     string(h.Event),
		Data:      h.Data,
		To:        h.To,
		InReplyTo: h.Re,
	}, nil
}

// NameCache keeps the channel and event names of the last event a
// client received: a stream of events with the same names then costs no
// string allocation.
type NameCache struct{ channel, event string }

// DecodeEvent is the package-level DecodeEvent, with the names kept from the last event.
func (nc *NameCache) DecodeEvent(body []byte) (Message, error) {
	h, err := ParseEvent(body)
	if err != nil {
		return Message{}, err
	}
	if string(h.Channel) != nc.channel {
		nc.channel = string(h.Channel)
	}
	if string(h.Event) != nc.event {
		nc.event = string(h.Event)
	}
	return Message{ID: h.ID, Origin: h.Origin, Sender: h.Sender, Channel: nc.channel, Event: nc.event, Data: h.Data,
		To: h.To, InReplyTo: h.Re}, nil
}
