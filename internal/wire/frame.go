package wire

import (
	"errors"
	"fmt"
)

// ProtocolVersion is the highest version of the local wire protocol this
// package speaks; PROTOCOL.md describes it. Version 2 adds the Ping and
// Pong frames, with which each side finds out that the other has stopped
// answering; version 3 adds resuming (the resume fields of Hello and
// Welcome, and the Drain frame: see resume.go); version 4 adds interest
// (the Hello's interest field, the Interest and Applied frames: see
// interest.go).
const ProtocolVersion = 4

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
	FrameHello    FrameType = 1 // client -> server, always the first frame
	FrameWelcome  FrameType = 2 // server -> client, the answer to Hello
	FrameEvent    FrameType = 3 // both ways
	FrameError    FrameType = 4 // server -> client, just before it closes
	FramePing     FrameType = 5 // both ways, from version 2: are you there?
	FramePong     FrameType = 6 // both ways, from version 2: the answer to a Ping
	FrameDrain    FrameType = 7 // both ways, from version 3: the server stops; the client's answer ends what it sends
	FrameInterest FrameType = 8 // client -> server, from version 4: the event names the client listens to
	FrameApplied  FrameType = 9 // server -> client, from version 4: an Interest frame is in force
)

var frameTypeNames = [...]string{FrameHello: "hello", FrameWelcome: "welcome", FrameEvent: "event",
	FrameError: "error", FramePing: "ping", FramePong: "pong", FrameDrain: "drain",
	FrameInterest: "interest", FrameApplied: "applied"}

func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) && frameTypeNames[t] != "" {
		return frameTypeNames[t]
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

// Errors of the wire codec.
var (
	// ErrFrameTooBig reports a frame whose declared length is over the limit.
	ErrFrameTooBig = errors.New("netcluster: frame too big")
	// ErrBadFrame reports a frame that is not well formed.
	ErrBadFrame = errors.New("netcluster: malformed frame")
)

// MalformedError says what is wrong with a malformed frame body and where.
// It matches ErrBadFrame with errors.Is.
type MalformedError struct {
	Offset int    // byte offset in the frame body
	Reason string // what was expected there
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("netcluster: malformed frame at byte %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrBadFrame) true.
func (e *MalformedError) Is(target error) bool { return target == ErrBadFrame }

// Hello opens a connection: the client's identity and protocol version.
type Hello struct {
	Version  uint64   // highest protocol version the client speaks
	ClientID [16]byte // the client's id, fresh for each connection
	Name     string   // a human name for the client, shown by the control channel
	PID      uint64   // the client's process id, as it says
	// From version 3: where the client resumes, and what history it
	// asks for (resume.go). Encoded only when one of them is set.
	Resume Cursor     // the zero Cursor: not resuming
	Since  uint64     // milliseconds of history asked for when not resuming; 0: none
	Own    [][16]byte // the client ids of the client's earlier connections: their events are not replayed to it
	// From version 4: what the client listens to (interest.go). nil:
	// every event, as for a client of an older version. Encoded only
	// when set, after the version 3 fields, zero ones if need be.
	Interest *Interest
}

// Welcome accepts a connection.
type Welcome struct {
	Version  uint64   // the protocol version both sides now speak
	Node     [16]byte // the server's node id; the client's events carry it as their origin
	Channel  string   // the channel this socket serves
	MaxFrame uint64   // the largest frame body the server accepts
	PID      uint64   // the server's process id
	// From version 3, when the channel retains events (resume.go):
	// where the client now stands, and how many events it missed that
	// the server no longer holds. Encoded only when Epoch is set.
	Epoch  [16]byte // the channel's ring of retained events; zero: none
	From   [16]byte // the last event before those that follow the Welcome; zero: the ring's start
	Missed uint64   // events after the client's cursor that are no longer retained
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
	CodeProtocol       ErrorCode = 1  // a malformed frame or an unexpected frame type
	CodeFrameTooBig    ErrorCode = 2  // a frame over the server's maxframe
	CodeVersion        ErrorCode = 3  // no protocol version in common
	CodeSlowConsumer   ErrorCode = 4  // the client's send queue overflowed
	CodeShutdown       ErrorCode = 5  // the server is shutting down
	CodeChannelGone    ErrorCode = 6  // the channel was removed from the configuration
	CodeHandshake      ErrorCode = 7  // no hello within the handshake time
	CodePingTimeout    ErrorCode = 8  // nothing from the client for the server's ping timeout
	CodeForbidden      ErrorCode = 9  // the channel's access rules (allow, publish) refuse the client
	CodeTooManyClients ErrorCode = 10 // a connection limit (maxclients, maxclientsperuid) is reached
)

var errorCodeNames = [...]string{CodeProtocol: "protocol error", CodeFrameTooBig: "frame too big",
	CodeVersion: "unsupported version", CodeSlowConsumer: "slow consumer", CodeShutdown: "server shutting down",
	CodeChannelGone: "channel removed", CodeHandshake: "handshake timeout", CodePingTimeout: "ping timeout",
	CodeForbidden: "forbidden", CodeTooManyClients: "too many clients"}

func (c ErrorCode) String() string {
	if int(c) < len(errorCodeNames) && errorCodeNames[c] != "" {
		return errorCodeNames[c]
	}
	return fmt.Sprintf("error %d", uint16(c))
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
