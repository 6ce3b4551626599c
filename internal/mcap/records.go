package mcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Magic opens and closes every MCAP file.
const Magic = "\x89MCAP0\r\n"

// Opcodes of the records this package writes or reads. The
// specification reserves the others; a reader skips them.
const (
	opHeader         = 0x01
	opFooter         = 0x02
	opSchema         = 0x03
	opChannel        = 0x04
	opMessage        = 0x05
	opChunk          = 0x06
	opMessageIndex   = 0x07
	opChunkIndex     = 0x08
	opStatistics     = 0x0b
	opSummaryOffset  = 0x0e
	opDataEnd        = 0x0f
	recordHeaderSize = 1 + 8 // opcode, content length
	footerSize       = recordHeaderSize + 8 + 8 + 4
	messagePrefix    = 2 + 4 + 8 + 8 // channel id, sequence, log time, publish time
)

// Sentinel errors a *FormatError wraps, for callers that branch on the
// kind of damage.
var (
	ErrNotMCAP   = errors.New("mcap: not an MCAP file")
	ErrTruncated = errors.New("mcap: file is truncated")
	ErrCRC       = errors.New("mcap: CRC mismatch")
	ErrCorrupt   = errors.New("mcap: malformed record")
	// ErrUnsupported is a record this package cannot read, such as a
	// compressed chunk.
	ErrUnsupported = errors.New("mcap: unsupported")
)

// FormatError is a fault in a file: what is wrong and the byte offset
// where it is.
type FormatError struct {
	Offset int64
	Err    error  // one of the sentinels above
	Detail string // what exactly
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%v at offset %d: %s", e.Err, e.Offset, e.Detail)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, kind error, format string, args ...any) error {
	return &FormatError{Offset: off, Err: kind, Detail: fmt.Sprintf(format, args...)}
}

// Channel is a Channel record: a topic and how its messages are encoded.
type Channel struct {
	ID              uint16
	SchemaID        uint16 // 0: no schema
	Topic           string
	MessageEncoding string
	Metadata        map[string]string
}

// Message is a Message record.
type Message struct {
	ChannelID   uint16
	Sequence    uint32
	LogTime     uint64 // nanoseconds since the Unix epoch
	PublishTime uint64 // nanoseconds since the Unix epoch
	Data        []byte
}

// Statistics is the Statistics record of the summary.
type Statistics struct {
	MessageCount     uint64
	SchemaCount      uint16
	ChannelCount     uint32
	AttachmentCount  uint32
	MetadataCount    uint32
	ChunkCount       uint32
	MessageStartTime uint64
	MessageEndTime   uint64
	ChannelCounts    map[uint16]uint64
}

// appendRecordHeader appends an opcode and a content length.
func appendRecordHeader(b []byte, op byte, n int) []byte {
	b = append(b, op)
	return binary.LittleEndian.AppendUint64(b, uint64(n))
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendStringMap appends a map<string,string>: its length in bytes, then
// its entries in key order, so that a file's bytes do not depend on map
// iteration.
func appendStringMap(b []byte, m map[string]string) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// appendChannel appends a whole Channel record.
func appendChannel(b []byte, c *Channel) []byte {
	at := len(b)
	b = appendRecordHeader(b, opChannel, 0)
	b = binary.LittleEndian.AppendUint16(b, c.ID)
	b = binary.LittleEndian.AppendUint16(b, c.SchemaID)
	b = appendString(b, c.Topic)
	b = appendString(b, c.MessageEncoding)
	b = appendStringMap(b, c.Metadata)
	binary.LittleEndian.PutUint64(b[at+1:], uint64(len(b)-at-recordHeaderSize))
	return b
}

// appendMessageHeader appends a Message record up to its data.
func appendMessageHeader(b []byte, m *Message) []byte {
	b = appendRecordHeader(b, opMessage, messagePrefix+len(m.Data))
	b = binary.LittleEndian.AppendUint16(b, m.ChannelID)
	b = binary.LittleEndian.AppendUint32(b, m.Sequence)
	b = binary.LittleEndian.AppendUint64(b, m.LogTime)
	return binary.LittleEndian.AppendUint64(b, m.PublishTime)
}

// appendStatistics appends a whole Statistics record.
func appendStatistics(b []byte, s *Statistics) []byte {
	at := len(b)
	b = appendRecordHeader(b, opStatistics, 0)
	b = binary.LittleEndian.AppendUint64(b, s.MessageCount)
	b = binary.LittleEndian.AppendUint16(b, s.SchemaCount)
	b = binary.LittleEndian.AppendUint32(b, s.ChannelCount)
	b = binary.LittleEndian.AppendUint32(b, s.AttachmentCount)
	b = binary.LittleEndian.AppendUint32(b, s.MetadataCount)
	b = binary.LittleEndian.AppendUint32(b, s.ChunkCount)
	b = binary.LittleEndian.AppendUint64(b, s.MessageStartTime)
	b = binary.LittleEndian.AppendUint64(b, s.MessageEndTime)
	ids := make([]uint16, 0, len(s.ChannelCounts))
	for id := range s.ChannelCounts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)*10))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint16(b, id)
		b = binary.LittleEndian.AppendUint64(b, s.ChannelCounts[id])
	}
	binary.LittleEndian.PutUint64(b[at+1:], uint64(len(b)-at-recordHeaderSize))
	return b
}

// appendSummaryOffset appends a Summary Offset record: where the group
// of records with one opcode lies in the summary section.
func appendSummaryOffset(b []byte, op byte, start, length uint64) []byte {
	b = appendRecordHeader(b, opSummaryOffset, 1+8+8)
	b = append(b, op)
	b = binary.LittleEndian.AppendUint64(b, start)
	return binary.LittleEndian.AppendUint64(b, length)
}
