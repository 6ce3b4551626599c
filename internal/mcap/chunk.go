package mcap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/pierrec/lz4/v4"
)

// Compressions a chunked Writer can use, by their MCAP names.
const (
	CompressNone = ""    // chunks of plain records
	CompressLZ4  = "lz4" // chunks in the LZ4 frame format
)

// Option changes how a Writer writes.
type Option func(*Writer) error

// Chunked makes the Writer group messages into chunks of about size
// bytes of records, compressed with compression (CompressNone or
// CompressLZ4), each followed by its message indexes, with a chunk index
// per chunk in the summary, which lets readers seek by time. Memory is
// one chunk, plus one chunk index per chunk written.
func Chunked(compression string, size int) Option {
	return func(w *Writer) error {
		if compression != CompressNone && compression != CompressLZ4 {
			return fmt.Errorf("mcap: unknown compression %q", compression)
		}
		if size <= 0 {
			return fmt.Errorf("mcap: chunk size %d is not positive", size)
		}
		w.chunk = &chunkWriter{compression: compression, size: size, index: map[uint16][]uint64{}}
		return nil
	}
}

// chunkWriter is the chunk being filled, and the indexes of the chunks
// written.
type chunkWriter struct {
	compression string
	size        int
	records     []byte
	start, end  uint64              // log times of the chunk's messages
	index       map[uint16][]uint64 // per channel: log time, offset, log time, offset...
	compressed  bytes.Buffer
	lz          *lz4.Writer
	indexes     []byte // Chunk Index records for the summary
	count       uint32 // chunks written
}

// add appends a message record to the chunk.
func (c *chunkWriter) add(m *Message) {
	if len(c.records) == 0 || m.LogTime < c.start {
		c.start = m.LogTime
	}
	if len(c.records) == 0 || m.LogTime > c.end {
		c.end = m.LogTime
	}
	c.index[m.ChannelID] = append(c.index[m.ChannelID], m.LogTime, uint64(len(c.records)))
	c.records = appendMessageHeader(c.records, m)
	c.records = append(c.records, m.Data...)
}

// compress returns the chunk's records as the chunk stores them.
func (c *chunkWriter) compress() ([]byte, error) {
	if c.compression == CompressNone {
		return c.records, nil
	}
	c.compressed.Reset()
	if c.lz == nil {
		c.lz = lz4.NewWriter(&c.compressed)
	} else {
		c.lz.Reset(&c.compressed)
	}
	if _, err := c.lz.Write(c.records); err != nil {
		return nil, fmt.Errorf("mcap: compressing a chunk: %w", err)
	}
	if err := c.lz.Close(); err != nil {
		return nil, fmt.Errorf("mcap: compressing a chunk: %w", err)
	}
	return c.compressed.Bytes(), nil
}

// flushChunk writes the chunk being filled, if it holds anything, and
// its message indexes, and keeps its chunk index for the summary.
func (w *Writer) flushChunk() error {
	c := w.chunk
	if c == nil || len(c.records) == 0 {
		return nil
	}
	data, err := c.compress()
	if err != nil {
		w.err = err
		return err
	}
	chunkStart := w.off
	b := appendRecordHeader(w.buf[:0], opChunk, 8+8+8+4+4+len(c.compression)+8+len(data))
	b = binary.LittleEndian.AppendUint64(b, c.start)
	b = binary.LittleEndian.AppendUint64(b, c.end)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(c.records)))
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(c.records))
	b = appendString(b, c.compression)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	w.buf = b
	if err := w.write(b); err != nil {
		return err
	}
	if err := w.write(data); err != nil {
		return err
	}
	chunkLen := w.off - chunkStart
	indexStart := w.off
	ids := make([]uint16, 0, len(c.index))
	for id := range c.index {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	offsets := make(map[uint16]uint64, len(ids))
	for _, id := range ids {
		offsets[id] = uint64(w.off)
		w.buf = appendMessageIndex(w.buf[:0], id, c.index[id])
		if err := w.write(w.buf); err != nil {
			return err
		}
		delete(c.index, id)
	}
	c.indexes = appendChunkIndex(c.indexes, c, uint64(chunkStart), uint64(chunkLen), offsets, uint64(w.off-indexStart), uint64(len(data)))
	c.count++
	c.records = c.records[:0]
	return nil
}

// appendMessageIndex appends a Message Index record: the log time and
// offset in the uncompressed chunk of each of a channel's messages.
func appendMessageIndex(b []byte, id uint16, entries []uint64) []byte {
	b = appendRecordHeader(b, opMessageIndex, 2+4+len(entries)*8)
	b = binary.LittleEndian.AppendUint16(b, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)*8))
	for _, v := range entries {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// appendChunkIndex appends a Chunk Index record for the summary.
func appendChunkIndex(b []byte, c *chunkWriter, start, length uint64, offsets map[uint16]uint64, indexLen, compressedSize uint64) []byte {
	at := len(b)
	b = appendRecordHeader(b, opChunkIndex, 0)
	b = binary.LittleEndian.AppendUint64(b, c.start)
	b = binary.LittleEndian.AppendUint64(b, c.end)
	b = binary.LittleEndian.AppendUint64(b, start)
	b = binary.LittleEndian.AppendUint64(b, length)
	ids := make([]uint16, 0, len(offsets))
	for id := range offsets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)*10))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint16(b, id)
		b = binary.LittleEndian.AppendUint64(b, offsets[id])
	}
	b = binary.LittleEndian.AppendUint64(b, indexLen)
	b = appendString(b, c.compression)
	b = binary.LittleEndian.AppendUint64(b, compressedSize)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(c.records)))
	binary.LittleEndian.PutUint64(b[at+1:], uint64(len(b)-at-recordHeaderSize))
	return b
}

// maxLZ4Ratio bounds how much an LZ4 frame can expand: a reader refuses
// a chunk that claims more, before it allocates for it.
const maxLZ4Ratio = 256

// decompressChunk returns a chunk's records, uncompressed. at is the
// offset of the chunk record, for errors.
func decompressChunk(k chunk, at int64) ([]byte, error) {
	switch k.compression {
	case CompressNone:
		if k.uncompressedSize != uint64(len(k.records)) {
			return nil, formatErr(at, ErrCorrupt, "a chunk of %d bytes of records says it has %d", len(k.records), k.uncompressedSize)
		}
		return k.records, nil
	case CompressLZ4:
		if k.uncompressedSize > uint64(len(k.records))*maxLZ4Ratio+1024 {
			return nil, formatErr(at, ErrCorrupt, "an lz4 chunk of %d bytes says it holds %d", len(k.records), k.uncompressedSize)
		}
		out := make([]byte, k.uncompressedSize)
		zr := lz4.NewReader(bytes.NewReader(k.records))
		if _, err := io.ReadFull(zr, out); err != nil {
			return nil, formatErr(at, ErrCorrupt, "decompressing an lz4 chunk of %d bytes to %d: %v", len(k.records), k.uncompressedSize, err)
		}
		if n, err := zr.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			return nil, formatErr(at, ErrCorrupt, "an lz4 chunk holds more than the %d bytes it says", k.uncompressedSize)
		}
		return out, nil
	}
	return nil, formatErr(at, ErrUnsupported, "a chunk compressed with %q; only lz4 and uncompressed chunks are read", k.compression)
}
