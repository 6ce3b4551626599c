package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/google/uuid"
)

// ProtocolVersion is the highest version of the local wire protocol this
// package speaks; PROTOCOL.md describes it. Version 2 adds the Ping and
// Pong frames, with which each side finds out that the other has stopped
// answering.
const ProtocolVersion = 2

// PingVersion is the first protocol version with Ping and Pong frames:
// neither side sends them on a connection of an older version.
const PingVersion = 2

// Frame limits.
const (
	// HeaderLen is the size of a frame's big-endian length prefix.
	HeaderLen = 4
	// DefaultMaxFrame is the largest frame body accepted unless configured
	// otherwise.
	DefaultMaxFrame = 1 << 20
	// MaxFrameLimit is the largest maxframe anyone may configure. It keeps
	// the first byte of every length prefix far below '{', which is how a
	// server tells a JSON text client from a framed one.
	MaxFrameLimit = 64 << 20
)

// FrameType is the first element of every frame body.
type FrameType uint8

// Frame types. ONLY APPEND TO THIS LIST: the numbers are on the wire.
const (
	FrameHello   FrameType = 1 // client -> server, always the first frame
	FrameWelcome FrameType = 2 // server -> client, the answer to Hello
	FrameEvent   FrameType = 3 // both ways
	FrameError   FrameType = 4 // server -> client, just before it closes
	FramePing    FrameType = 5 // both ways, from version 2: are you there?
	FramePong    FrameType = 6 // both ways, from version 2: the answer to a Ping
)

func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "hello"
	case FrameWelcome:
		return "welcome"
	case FrameEvent:
		return "event"
	case FrameError:
		return "error"
	case FramePing:
		return "ping"
	case FramePong:
		return "pong"
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

// Errors of the wire codec.
var (
	// ErrFrameTooBig reports a frame whose declared length is over the limit.
	ErrFrameTooBig = errors.New("bus: frame too big")
	// ErrBadFrame reports a frame that is not well formed.
	ErrBadFrame = errors.New("bus: malformed frame")
)

// MalformedError says what is wrong with a malformed frame body and where.
// It matches ErrBadFrame with errors.Is.
type MalformedError struct {
	Offset int    // byte offset in the frame body
	Reason string // what was expected there
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("bus: malformed frame at byte %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrBadFrame) true.
func (e *MalformedError) Is(target error) bool { return target == ErrBadFrame }

// Hello opens a connection: the client's identity and protocol version.
type Hello struct {
	Version  uint64   // highest protocol version the client speaks
	ClientID [16]byte // the client's id, fresh for each connection
	Name     string   // a human name for the client, shown by the control channel
	PID      uint64   // the client's process id, as it says
}

// Welcome accepts a connection.
type Welcome struct {
	Version  uint64   // the protocol version both sides now speak
	Node     [16]byte // the server's node id; the client's events carry it as their origin
	Channel  string   // the channel this socket serves
	MaxFrame uint64   // the largest frame body the server accepts
	PID      uint64   // the server's process id
}

// ErrorFrame is what a server says before it closes a connection.
type ErrorFrame struct {
	Code    ErrorCode
	Message string
}

// ErrorCode classifies an ErrorFrame. ONLY APPEND TO THIS LIST.
type ErrorCode uint16

// Error codes carried by FrameError frames.
const (
	CodeProtocol     ErrorCode = 1 // a malformed frame or an unexpected frame type
	CodeFrameTooBig  ErrorCode = 2 // a frame over the server's maxframe
	CodeVersion      ErrorCode = 3 // no protocol version in common
	CodeSlowConsumer ErrorCode = 4 // the client's send queue overflowed
	CodeShutdown     ErrorCode = 5 // the server is shutting down
	CodeChannelGone  ErrorCode = 6 // the channel was removed from the configuration
	CodeHandshake    ErrorCode = 7 // no hello within the handshake time
	CodePingTimeout  ErrorCode = 8 // nothing from the client for the server's ping timeout
)

func (c ErrorCode) String() string {
	switch c {
	case CodeProtocol:
		return "protocol error"
	case CodeFrameTooBig:
		return "frame too big"
	case CodeVersion:
		return "unsupported version"
	case CodeSlowConsumer:
		return "slow consumer"
	case CodeShutdown:
		return "server shutting down"
	case CodeChannelGone:
		return "channel removed"
	case CodeHandshake:
		return "handshake timeout"
	case CodePingTimeout:
		return "ping timeout"
	}
	return fmt.Sprintf("error %d", uint16(c))
}

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
	dst, start := beginFrame(dst, FrameHello, 4)
	dst = appendUint(dst, h.Version)
	dst = appendBin(dst, h.ClientID[:])
	dst = appendStr(dst, h.Name)
	dst = appendUint(dst, h.PID)
	return endFrame(dst, start)
}

// AppendWelcome appends w as a complete frame.
func AppendWelcome(dst []byte, w *Welcome) []byte {
	dst, start := beginFrame(dst, FrameWelcome, 5)
	dst = appendUint(dst, w.Version)
	dst = appendBin(dst, w.Node[:])
	dst = appendStr(dst, w.Channel)
	dst = appendUint(dst, w.MaxFrame)
	dst = appendUint(dst, w.PID)
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

// The fixed layout of an event frame as AppendEventHead writes it (a
// fixarray, a fixint frame type, and the ids as bin8 of 16 bytes), in
// bytes from the start of the body: where each id's 16 bytes begin.
// ParseEvent's fast path reads at these offsets, and a client rewrites
// the origin and sender of frames it kept while reconnecting.
const (
	EventIDAt     = 2 + 2              // array header, frame type, bin8 header
	EventOriginAt = EventIDAt + 16 + 2 // past the id and the next bin8 header
	EventSenderAt = EventOriginAt + 16 + 2
	eventIDsEnd   = EventSenderAt + 16
)

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

// EventHeader is an event frame as routing sees it: fixed-size ids, and
// slices that alias the frame body. Nothing is copied or allocated.
type EventHeader struct {
	ID, Origin, Sender [16]byte
	Channel, Event     []byte
	Data               []byte // one msgpack value
	// To is the client the event is addressed to, and Re the id of the
	// event it answers; zero when the frame does not say (nil or absent).
	To, Re [16]byte
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

// FrameReader reads length-prefixed frames from a stream.
type FrameReader struct {
	r   *bufio.Reader
	max int
	hdr [HeaderLen]byte // a local would escape through io.ReadFull
}

// NewFrameReader reads frames from r, refusing bodies over max bytes; a
// max of 0 or less means DefaultMaxFrame.
func NewFrameReader(r *bufio.Reader, max int) *FrameReader {
	fr := &FrameReader{r: r}
	fr.SetMax(max)
	return fr
}

// SetMax changes the largest body the reader accepts; 0 or less means
// DefaultMaxFrame.
func (fr *FrameReader) SetMax(max int) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	fr.max = max
}

// eagerAlloc is the largest body ReadFrame allocates in full as soon as
// it knows the length. A larger one grows as its bytes arrive, so that a
// peer that declares a large frame and sends nothing more holds no more
// than this much of the reader's memory.
const eagerAlloc = 64 << 10

// ReadFrame returns the next frame, length prefix included, in a new slice
// that the caller owns. A declared length over the limit is refused before
// anything is allocated; the stream is then unusable. At a clean end of
// stream between frames it returns io.EOF.
func (fr *FrameReader) ReadFrame() ([]byte, error) { return fr.ReadFrameWith(nil) }

// ReadFrameWith is ReadFrame reading into a buffer the caller supplies:
// once the frame's size (length prefix included) is known and within the
// limit, and the body is at most 64 KiB, it calls get(size) and reads
// the frame into the slice get returns, which must have a capacity of at
// least size bytes. The frame returned is that slice with length size.
// When get is nil or returns nil, or the body is larger, the frame is
// allocated as ReadFrame does. get is called at most once per frame, and
// not at all when the read fails before the size is known; after it was
// called, the buffer is the caller's again whether the read succeeds or
// not.
func (fr *FrameReader) ReadFrameWith(get func(size int) []byte) ([]byte, error) {
	// When the whole frame is in the buffer already, as it is for all
	// but the last of the frames that one read brought, copy it out in
	// one step.
	if b := fr.r.Buffered(); b >= HeaderLen {
		p, _ := fr.r.Peek(b)
		n := binary.BigEndian.Uint32(p)
		if size := HeaderLen + int(n); n != 0 && uint64(n) <= uint64(fr.max) && size <= b {
			frame := frameBuffer(get, size)
			copy(frame, p)
			fr.r.Discard(size)
			return frame, nil
		}
	}
	hdr := fr.hdr[:]
	if _, err := io.ReadFull(fr.r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 {
		return nil, &MalformedError{Reason: "empty frame"}
	}
	if uint64(n) > uint64(fr.max) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooBig, n, fr.max)
	}
	size := HeaderLen + int(n)
	var frame []byte
	if n <= eagerAlloc {
		frame = frameBuffer(get, size)
	} else {
		frame = make([]byte, HeaderLen+eagerAlloc)
	}
	copy(frame, hdr)
	for have := HeaderLen; have < size; {
		if have == len(frame) {
			frame = append(frame, make([]byte, min(size-have, have))...) // double, up to size
		}
		m, err := io.ReadFull(fr.r, frame[have:])
		have += m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return frame, nil
}

// frameBuffer returns a slice of length size for a frame of at most
// eagerAlloc bytes of body: from get when it gives one, else a new one.
func frameBuffer(get func(size int) []byte, size int) []byte {
	if get != nil && size <= HeaderLen+eagerAlloc {
		if b := get(size); cap(b) >= size {
			return b[:size]
		}
	}
	return make([]byte, size)
}

// StampEvent writes origin and sender into an event frame (length prefix
// included) that AppendEventHead began, in place.
func StampEvent(frame []byte, origin, sender [16]byte) {
	copy(frame[HeaderLen+EventOriginAt:], origin[:])
	copy(frame[HeaderLen+EventSenderAt:], sender[:])
}
