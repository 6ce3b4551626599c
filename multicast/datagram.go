package multicast

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Version is the version of the datagram format this package speaks;
// PROTOCOL.md, section "Network protocol", describes it.
const Version = 1

// Datagram layout. The numbers are on the wire.
const (
	// HeaderLen is the size of a datagram's fixed header.
	HeaderLen = 38
	// RecordHeaderLen is the size of the fixed part of each record.
	RecordHeaderLen = 26
	// Overhead is what a datagram carrying one record spends on headers.
	Overhead = HeaderLen + RecordHeaderLen
	// MaxRecords is the most records one datagram may carry.
	MaxRecords = 255
	// MaxFragments is the most fragments one message may be split into.
	MaxFragments = 65535
	// MaxDatagram is the largest UDP payload over IPv4.
	MaxDatagram = 65507
	// MinPayload is the smallest datagram size a sender may be configured
	// with.
	MinPayload = 576
	// MaxPayload is the largest: a repair carries a whole datagram, with
	// a header and a length around it, and must fit in MaxDatagram too.
	MaxPayload = MaxDatagram - repairOverhead
	// DefaultPayload is the default datagram size: it fits a 1500-byte
	// Ethernet MTU with room for tunnels.
	DefaultPayload = 1400
)

// magic opens every datagram: "nc".
var magic = [2]byte{'n', 'c'}

// Kind says what the records of a datagram hold.
type Kind uint8

// Datagram kinds. ONLY APPEND TO THIS LIST: the numbers are on the wire.
const (
	KindData      Kind = 1 // records are fragments of Event frame bodies
	KindHeartbeat Kind = 2 // records are fragments of a heartbeat
	// KindNAK asks a node to resend datagrams: its body names the node
	// and ranges of its sequence numbers (nak.go). Numbered in stream 1.
	KindNAK Kind = 3
	// KindRepair answers a NAK: its body holds datagrams sent before, as
	// they were sent, and ranges the sender no longer holds (nak.go).
	// Numbered in stream 1.
	KindRepair Kind = 4
	// KindStatus reports a receiver's progress in the streams of the
	// senders it hears, for flow control: its body holds an entry per
	// sender (status.go), and it may hold none. Numbered in stream 1.
	KindStatus Kind = 5
)

// Stream is the sequence series a kind is numbered in: 0 for data and
// heartbeats, the series that receivers keep in order and repair; 1 for
// NAKs, repairs and statuses, which are neither ordered nor repaired. A node never
// uses a (stream, sequence number) pair twice.
func (k Kind) Stream() uint32 {
	if k == KindNAK || k == KindRepair || k == KindStatus {
		return 1
	}
	return 0
}

var kindNames = [...]string{KindData: "data", KindHeartbeat: "heartbeat", KindNAK: "nak", KindRepair: "repair", KindStatus: "status"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Errors of the datagram decoder. Each decoding error matches exactly one
// of them with errors.Is.
var (
	// ErrTruncated reports a datagram shorter than its header or records say.
	ErrTruncated = errors.New("multicast: truncated datagram")
	// ErrMagic reports a datagram that does not start with "nc".
	ErrMagic = errors.New("multicast: bad magic")
	// ErrVersion reports a datagram of a version this package does not speak.
	ErrVersion = errors.New("multicast: unsupported version")
	// ErrKind reports a datagram of an unknown kind or with unknown flags.
	ErrKind = errors.New("multicast: unknown kind or flags")
	// ErrFragment reports a record whose fragment fields make no sense.
	ErrFragment = errors.New("multicast: bad fragment")
	// ErrMalformed reports any other layout error.
	ErrMalformed = errors.New("multicast: malformed datagram")
)

// DecodeError says what is wrong with a datagram and where. It matches one
// of the sentinel errors above with errors.Is.
type DecodeError struct {
	Kind   error // one of the sentinels
	Offset int   // byte offset in the datagram
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v at byte %d: %s", e.Kind, e.Offset, e.Reason)
}

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Kind }

func decodeErr(kind error, off int, format string, args ...any) error {
	return &DecodeError{Kind: kind, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ClusterID is the 8-byte id of a cluster name on the wire: the first
// bytes of SHA-256("netcluster cluster " + name).
type ClusterID [8]byte

// ClusterIDOf returns the id of a cluster name.
func ClusterIDOf(name string) ClusterID {
	sum := sha256.Sum256([]byte("netcluster cluster " + name))
	return ClusterID(sum[:8])
}

// Header is the fixed header of a datagram.
type Header struct {
	Kind    Kind
	Flags   uint8 // 0, or FlagSealed
	Records int   // 1..MaxRecords: records, or a NAK's ranges, or a repair's or status's entries (a status may have 0)
	Cluster ClusterID
	Node    uuid.UUID // the sender
	Seq     uint64    // per sender and stream (Kind.Stream), +1 per datagram, from 1
}

// Record is one fragment of a message.
type Record struct {
	ID      uuid.UUID // the message id; for data, the event's id
	Index   int       // 0..Count-1
	Count   int       // 1..MaxFragments
	Total   int       // length of the whole message in bytes
	Payload []byte    // this fragment's bytes; aliases the datagram
}

// AppendHeader appends h to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, magic[0], magic[1], Version, byte(h.Kind), h.Flags, byte(h.Records))
	dst = append(dst, h.Cluster[:]...)
	dst = append(dst, h.Node[:]...)
	return binary.BigEndian.AppendUint64(dst, h.Seq)
}

// AppendRecord appends r to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, r.ID[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Index))
	dst = binary.BigEndian.AppendUint16(dst, uint16(r.Count))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Total))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Payload)))
	return append(dst, r.Payload...)
}

// seqAt is where a datagram's header holds its sequence number, the
// header's last 8 bytes.
const seqAt = HeaderLen - 8

// seqOf reads the sequence number of a datagram at least HeaderLen long.
func seqOf(d []byte) uint64 { return binary.BigEndian.Uint64(d[seqAt:HeaderLen]) }

// ParseHeader decodes the fixed header of a datagram and returns the
// bytes that follow it.
func ParseHeader(b []byte) (Header, []byte, error) {
	var h Header
	switch {
	case len(b) < 3:
		return h, nil, decodeErr(ErrTruncated, len(b), "%d bytes, the header needs %d", len(b), HeaderLen)
	case b[0] != magic[0] || b[1] != magic[1]:
		return h, nil, decodeErr(ErrMagic, 0, "want 6e63 (\"nc\"), got %02x%02x", b[0], b[1])
	case b[2] != Version:
		return h, nil, decodeErr(ErrVersion, 2, "version %d, this node speaks %d", b[2], Version)
	case len(b) < HeaderLen:
		return h, nil, decodeErr(ErrTruncated, len(b), "%d bytes, the header needs %d", len(b), HeaderLen)
	}
	h.Kind = Kind(b[3])
	h.Flags = b[4]
	h.Records = int(b[5])
	copy(h.Cluster[:], b[6:14])
	copy(h.Node[:], b[14:30])
	h.Seq = seqOf(b)
	switch {
	case h.Kind < KindData || h.Kind > KindStatus:
		return h, nil, decodeErr(ErrKind, 3, "unknown %v", h.Kind)
	case h.Flags&^FlagSealed != 0:
		return h, nil, decodeErr(ErrKind, 4, "unknown flags %#02x", h.Flags)
	case h.Records == 0 && h.Kind != KindStatus:
		return h, nil, decodeErr(ErrMalformed, 5, "no records")
	}
	return h, b[HeaderLen:], nil
}

// ParseRecords decodes the records that follow a header into dst, which
// it returns. maxMessage bounds a message's total length; a record over
// it is an ErrFragment. Records alias b.
func ParseRecords(dst []Record, h *Header, b []byte, maxMessage int) ([]Record, error) {
	off := HeaderLen
	if h.Flags&FlagSealed != 0 {
		return dst, decodeErr(ErrMalformed, off, "the records are sealed: open the datagram first (Sealer.Open)")
	}
	for i := range h.Records {
		if len(b) < RecordHeaderLen {
			return dst, decodeErr(ErrTruncated, off+len(b), "record %d: %d bytes left, its header needs %d", i, len(b), RecordHeaderLen)
		}
		var r Record
		copy(r.ID[:], b[:16])
		r.Index = int(binary.BigEndian.Uint16(b[16:]))
		r.Count = int(binary.BigEndian.Uint16(b[18:]))
		r.Total = int(binary.BigEndian.Uint32(b[20:]))
		n := int(binary.BigEndian.Uint16(b[24:]))
		if len(b)-RecordHeaderLen < n {
			return dst, decodeErr(ErrTruncated, off+len(b), "record %d: payload of %d bytes, %d left", i, n, len(b)-RecordHeaderLen)
		}
		r.Payload = b[RecordHeaderLen : RecordHeaderLen+n]
		if why := r.check(maxMessage); why != "" {
			return dst, decodeErr(ErrFragment, off, "record %d: %s", i, why)
		}
		dst = append(dst, r)
		b = b[RecordHeaderLen+n:]
		off += RecordHeaderLen + n
	}
	if len(b) != 0 {
		return dst, decodeErr(ErrMalformed, off, "%d bytes after the last record", len(b))
	}
	return dst, nil
}

// check says what is absurd about a record's fragment fields, or "".
func (r *Record) check(maxMessage int) string {
	n := len(r.Payload)
	switch {
	case r.Count == 0:
		return "fragment count 0"
	case r.Index >= r.Count:
		return fmt.Sprintf("fragment index %d of %d", r.Index, r.Count)
	case r.Total == 0 || n == 0:
		return "empty message"
	case r.Total > maxMessage:
		return fmt.Sprintf("message of %d bytes, the limit is %d", r.Total, maxMessage)
	case r.Count > r.Total:
		return fmt.Sprintf("%d fragments for %d bytes", r.Count, r.Total)
	case n > r.Total:
		return fmt.Sprintf("fragment of %d bytes in a message of %d", n, r.Total)
	case r.Count == 1 && n != r.Total:
		return fmt.Sprintf("single fragment of %d bytes, message of %d", n, r.Total)
	}
	return ""
}

// Fragments returns how many fragments a message of n bytes is split
// into for datagrams of payload bytes: each but the last fills a datagram
// by itself.
func Fragments(n, payload int) int {
	per := payload - Overhead
	return (n + per - 1) / per
}
