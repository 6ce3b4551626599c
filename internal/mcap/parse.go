package mcap

import (
	"encoding/binary"
	"fmt"
)

// cursor reads the fields of one record's content. off is the file
// offset of b[0], so that errors name where in the file they are. The
// first field that does not fit sets err; later reads return zeros.
type cursor struct {
	b   []byte
	at  int
	off int64
	err error
}

func (c *cursor) take(n int, what string) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || n > len(c.b)-c.at {
		c.err = formatErr(c.off+int64(c.at), ErrCorrupt, "%s of %d bytes runs past the end of its record (%d bytes left)", what, n, len(c.b)-c.at)
		return nil
	}
	p := c.b[c.at : c.at+n]
	c.at += n
	return p
}

func (c *cursor) u16(what string) uint16 {
	if p := c.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (c *cursor) u32(what string) uint32 {
	if p := c.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (c *cursor) u64(what string) uint64 {
	if p := c.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// length checks that n bytes are left after the length field that
// started at field, and names that field's offset if not.
func (c *cursor) length(n uint64, field int, what string) int {
	if c.err == nil && n > uint64(len(c.b)-c.at) {
		c.err = formatErr(c.off+int64(field), ErrCorrupt, "%s of %d bytes runs past the end of its record (%d bytes left)", what, n, len(c.b)-c.at)
	}
	return int(min(n, uint64(len(c.b)-c.at)))
}

func (c *cursor) str(what string) string {
	field := c.at
	return string(c.take(c.length(uint64(c.u32(what+" length")), field, what), what))
}

func (c *cursor) stringMap(what string) map[string]string {
	field := c.at
	n := c.length(uint64(c.u32(what+" length")), field, what)
	if c.err != nil {
		return nil
	}
	inner := cursor{b: c.take(n, what), off: c.off + int64(c.at)}
	m := map[string]string{}
	for inner.err == nil && inner.at < len(inner.b) {
		k := inner.str(what + " key")
		m[k] = inner.str(what + " value")
	}
	if inner.err != nil {
		c.err = inner.err
	}
	return m
}

func parseChannel(c *cursor) *Channel {
	ch := &Channel{ID: c.u16("channel id"), SchemaID: c.u16("schema id")}
	ch.Topic = c.str("topic")
	ch.MessageEncoding = c.str("message encoding")
	ch.Metadata = c.stringMap("channel metadata")
	return ch
}

func parseMessage(c *cursor, m *Message) {
	m.ChannelID = c.u16("channel id")
	m.Sequence = c.u32("sequence")
	m.LogTime = c.u64("log time")
	m.PublishTime = c.u64("publish time")
	m.Data = c.take(len(c.b)-c.at, "message data")
}

func parseStatistics(c *cursor) *Statistics {
	s := &Statistics{
		MessageCount:     c.u64("message count"),
		SchemaCount:      c.u16("schema count"),
		ChannelCount:     c.u32("channel count"),
		AttachmentCount:  c.u32("attachment count"),
		MetadataCount:    c.u32("metadata count"),
		ChunkCount:       c.u32("chunk count"),
		MessageStartTime: c.u64("message start time"),
		MessageEndTime:   c.u64("message end time"),
		ChannelCounts:    map[uint16]uint64{},
	}
	field := c.at
	n := c.length(uint64(c.u32("channel message counts length")), field, "channel message counts")
	if c.err != nil {
		return nil
	}
	if n%10 != 0 {
		c.err = formatErr(c.off+int64(c.at), ErrCorrupt, "channel message counts of %d bytes is not a whole number of entries", n)
		return nil
	}
	for range n / 10 {
		id := c.u16("channel id")
		s.ChannelCounts[id] = c.u64("message count")
	}
	return s
}

// chunk is a Chunk record's fields but its message times.
type chunk struct {
	uncompressedSize uint64
	crc              uint32
	compression      string
	records          []byte
	recordsOff       int64
}

func parseChunk(c *cursor) chunk {
	c.u64("chunk start time")
	c.u64("chunk end time")
	k := chunk{uncompressedSize: c.u64("uncompressed size"), crc: c.u32("uncompressed crc")}
	k.compression = c.str("compression")
	field := c.at
	n := c.length(c.u64("records length"), field, "chunk records")
	k.recordsOff = c.off + int64(c.at)
	k.records = c.take(n, "chunk records")
	return k
}

func opName(op byte) string {
	switch op {
	case opHeader:
		return "Header"
	case opFooter:
		return "Footer"
	case opChannel:
		return "Channel"
	case opMessage:
		return "Message"
	case opChunk:
		return "Chunk"
	case opStatistics:
		return "Statistics"
	case opDataEnd:
		return "Data End"
	}
	return fmt.Sprintf("record 0x%02x", op)
}
