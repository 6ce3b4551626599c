package wire

import (
	"encoding/binary"

	"github.com/google/uuid"
)

// beginFrame reserves the length prefix and writes the array header and
// frame type.
func beginFrame(dst []byte, t FrameType, fields int) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendArrayHeader(dst, fields+1)
	return append(dst, byte(t)), start
}

// endFrame fills in the length prefix of the frame that starts at start.
func endFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-HeaderLen))
	return dst
}

// AppendHello appends h as a complete frame, length prefix included.
func AppendHello(dst []byte, h *Hello) []byte {
	n := 4
	if h.resumes() {
		n += helloResumeFields
	}
	if h.declares() {
		n += interestFields
	}
	dst, start := beginFrame(dst, FrameHello, n)
	dst = appendUint(dst, h.Version)
	dst = appendBin(dst, h.ClientID[:])
	dst = appendStr(dst, h.Name)
	dst = appendUint(dst, h.PID)
	if h.resumes() {
		dst = appendHelloResume(dst, h)
	}
	if h.declares() {
		dst = appendPatterns(dst, h.Interest)
	}
	return endFrame(dst, start)
}

// AppendWelcome appends w as a complete frame.
func AppendWelcome(dst []byte, w *Welcome) []byte {
	n := 5
	if w.resumes() {
		n += welcomeResumeFields
	}
	dst, start := beginFrame(dst, FrameWelcome, n)
	dst = appendUint(dst, w.Version)
	dst = appendBin(dst, w.Node[:])
	dst = appendStr(dst, w.Channel)
	dst = appendUint(dst, w.MaxFrame)
	dst = appendUint(dst, w.PID)
	if w.resumes() {
		dst = appendWelcomeResume(dst, w)
	}
	return endFrame(dst, start)
}

// AppendError appends e as a complete frame.
func AppendError(dst []byte, e *ErrorFrame) []byte {
	dst, start := beginFrame(dst, FrameError, 2)
	dst = appendUint(dst, uint64(e.Code))
	dst = appendStr(dst, e.Message)
	return endFrame(dst, start)
}

// AppendPing appends a Ping frame, [5]: the receiver answers with a Pong.
func AppendPing(dst []byte) []byte {
	dst, start := beginFrame(dst, FramePing, 0)
	return endFrame(dst, start)
}

// AppendPong appends a Pong frame, [6]: the answer to a Ping.
func AppendPong(dst []byte) []byte {
	dst, start := beginFrame(dst, FramePong, 0)
	return endFrame(dst, start)
}

// AppendEvent appends m as a complete frame. m.Data must hold exactly one
// msgpack value; empty Data is sent as nil. The fields to and re are
// written only when m.To or m.InReplyTo is set.
func AppendEvent(dst []byte, m *Message) []byte {
	dst, start := AppendEventHead(dst, m)
	if len(m.Data) == 0 {
		dst = append(dst, 0xc0)
	} else {
		dst = append(dst, m.Data...)
	}
	return EndEvent(dst, m, start)
}

// addressed reports whether an event frame for m carries the fields to
// and re.
func addressed(m *Message) bool { return m.To != uuid.Nil || m.InReplyTo != uuid.Nil }

// AppendEventHead appends an event frame up to its data, which the caller
// appends before it calls EndEvent with start.
func AppendEventHead(dst []byte, m *Message) (_ []byte, start int) {
	fields := 6
	if addressed(m) {
		fields = 8
	}
	dst, start = beginFrame(dst, FrameEvent, fields)
	dst = appendBin(dst, m.ID[:])
	dst = appendBin(dst, m.Origin[:])
	dst = appendBin(dst, m.Sender[:])
	dst = appendStr(dst, m.Channel)
	dst = appendStr(dst, m.Event)
	return dst, start
}

// EndEvent appends the fields that follow an event's data, to and re,
// when m has them, and fills in the length prefix.
func EndEvent(dst []byte, m *Message, start int) []byte {
	if addressed(m) {
		dst = appendOptID(dst, m.To)
		dst = appendOptID(dst, m.InReplyTo)
	}
	return endFrame(dst, start)
}

// appendOptID appends an id, or nil for the zero id.
func appendOptID(dst []byte, id uuid.UUID) []byte {
	if id == uuid.Nil {
		return append(dst, 0xc0)
	}
	return appendBin(dst, id[:])
}

// StampEvent writes origin and sender into an event frame (length prefix
// included) that AppendEventHead began, in place.
func StampEvent(frame []byte, origin, sender [16]byte) {
	copy(frame[HeaderLen+EventOriginAt:], origin[:])
	copy(frame[HeaderLen+EventSenderAt:], sender[:])
}
