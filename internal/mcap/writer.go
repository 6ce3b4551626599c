package mcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
)

// ErrTooManyChannels is returned by AddChannel past the 65,535 channels a
// file can name.
var ErrTooManyChannels = errors.New("mcap: too many channels")

// errWriterClosed is returned by a Writer's methods after Close.
var errWriterClosed = errors.New("mcap: writer closed")

// Writer writes one unchunked MCAP file, streaming: each record goes to
// a buffered writer as it comes. Only the channels and a message count
// per channel stay in memory. Close writes the summary and the footer;
// a file whose writer was never closed has neither, and readers refuse
// it as truncated.
type Writer struct {
	w        *bufio.Writer
	sink     crcWriter
	off      int64 // bytes written so far
	buf      []byte
	channels []*Channel
	counts   []uint64 // messages per channel, by id-1
	stats    Statistics
	chunk    *chunkWriter // nil: messages go straight to the data section
	err      error        // the first write error; every later call returns it
}

// NewWriter writes the magic and the Header record to w and returns a
// Writer that appends to it. library names the program that writes the
// file (the Header's library field); the profile is empty. Without
// options the file is unchunked; Chunked groups messages into chunks.
func NewWriter(w io.Writer, library string, opts ...Option) (*Writer, error) {
	mw := &Writer{
		sink:  crcWriter{w: w, crc: crc32.NewIEEE()},
		stats: Statistics{ChannelCounts: map[uint16]uint64{}},
	}
	for _, o := range opts {
		if err := o(mw); err != nil {
			return nil, err
		}
	}
	mw.w = bufio.NewWriterSize(&mw.sink, 64<<10)
	b := append(mw.buf[:0], Magic...)
	at := len(b)
	b = appendRecordHeader(b, opHeader, 0)
	b = appendString(b, "") // profile
	b = appendString(b, library)
	binary.LittleEndian.PutUint64(b[at+1:], uint64(len(b)-at-recordHeaderSize))
	mw.buf = b
	if err := mw.write(b); err != nil {
		return nil, err
	}
	return mw, nil
}

// crcWriter computes the CRC of what goes through it: of the data
// section, then of the summary. It sits under the buffer, so that the CRC
// is computed over large blocks, not record by record.
type crcWriter struct {
	w   io.Writer
	crc hash.Hash32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc.Write(p[:n])
	return n, err
}

// sum flushes the buffer and returns the CRC of everything written since
// the last reset.
func (w *Writer) sum() (uint32, error) {
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("mcap: writing: %w", err)
		return 0, w.err
	}
	return w.sink.crc.Sum32(), nil
}

// write writes b, adding it to the offset.
func (w *Writer) write(b []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	if err != nil {
		w.err = fmt.Errorf("mcap: writing: %w", err)
	}
	return w.err
}

// Flush writes what is buffered to the underlying writer, the chunk
// being filled included, so that a reader of the growing file sees every
// message written so far.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flushChunk(); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("mcap: writing: %w", err)
	}
	return w.err
}

// Size is the number of bytes written so far, buffered ones included.
func (w *Writer) Size() int64 { return w.off }

// MessageCount is the number of messages written so far.
func (w *Writer) MessageCount() uint64 { return w.stats.MessageCount }

// AddChannel writes a Channel record with no schema and returns its id.
// Messages on it may follow.
func (w *Writer) AddChannel(topic, encoding string, metadata map[string]string) (uint16, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(w.channels) >= math.MaxUint16 {
		return 0, ErrTooManyChannels
	}
	c := &Channel{ID: uint16(len(w.channels) + 1), Topic: topic, MessageEncoding: encoding, Metadata: metadata}
	w.buf = appendChannel(w.buf[:0], c)
	if err := w.write(w.buf); err != nil {
		return 0, err
	}
	w.channels = append(w.channels, c)
	w.counts = append(w.counts, 0)
	return c.ID, nil
}

// WriteMessage writes a Message record on a channel AddChannel returned.
// Its data is written as it is; the Writer keeps no reference to it.
func (w *Writer) WriteMessage(m *Message) error {
	if w.err != nil {
		return w.err
	}
	if m.ChannelID == 0 || int(m.ChannelID) > len(w.channels) {
		return fmt.Errorf("mcap: message on channel %d, which was not added", m.ChannelID)
	}
	if err := w.writeMessage(m); err != nil {
		return err
	}
	s := &w.stats
	if s.MessageCount == 0 || m.LogTime < s.MessageStartTime {
		s.MessageStartTime = m.LogTime
	}
	if m.LogTime > s.MessageEndTime {
		s.MessageEndTime = m.LogTime
	}
	s.MessageCount++
	w.counts[m.ChannelID-1]++
	return nil
}

// writeMessage writes a message record, or adds it to the chunk.
func (w *Writer) writeMessage(m *Message) error {
	if c := w.chunk; c != nil {
		c.add(m)
		if len(c.records) >= c.size {
			return w.flushChunk()
		}
		return nil
	}
	w.buf = appendMessageHeader(w.buf[:0], m)
	if err := w.write(w.buf); err != nil {
		return err
	}
	return w.write(m.Data)
}

// Close ends the data section with a Data End record, writes the summary
// (the channels again, the statistics), the summary offsets and the
// footer, and flushes. It does not close the underlying writer. The
// Writer cannot be used after.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flushChunk(); err != nil {
		return err
	}
	crc, err := w.sum()
	if err != nil {
		return err
	}
	b := appendRecordHeader(w.buf[:0], opDataEnd, 4)
	b = binary.LittleEndian.AppendUint32(b, crc)
	if err := w.write(b); err != nil {
		return err
	}
	if _, err := w.sum(); err != nil {
		return err
	}
	w.sink.crc.Reset()
	summaryStart := w.off
	b = b[:0]
	for _, c := range w.channels {
		b = appendChannel(b, c)
	}
	channelsLen := len(b)
	w.stats.ChannelCount = uint32(len(w.channels))
	for i, n := range w.counts {
		w.stats.ChannelCounts[uint16(i+1)] = n
	}
	var indexes []byte
	if w.chunk != nil {
		w.stats.ChunkCount = w.chunk.count
		indexes = w.chunk.indexes
	}
	b = appendStatistics(b, &w.stats)
	statsLen := len(b) - channelsLen
	b = append(b, indexes...)
	offsetsStart := summaryStart + int64(len(b))
	if channelsLen > 0 {
		b = appendSummaryOffset(b, opChannel, uint64(summaryStart), uint64(channelsLen))
	}
	b = appendSummaryOffset(b, opStatistics, uint64(summaryStart)+uint64(channelsLen), uint64(statsLen))
	if len(indexes) > 0 {
		b = appendSummaryOffset(b, opChunkIndex, uint64(summaryStart)+uint64(channelsLen+statsLen), uint64(len(indexes)))
	}
	b = appendRecordHeader(b, opFooter, 8+8+4)
	b = binary.LittleEndian.AppendUint64(b, uint64(summaryStart))
	b = binary.LittleEndian.AppendUint64(b, uint64(offsetsStart))
	w.buf = b
	if err := w.write(b); err != nil {
		return err
	}
	crc, err = w.sum()
	if err != nil {
		return err
	}
	b = binary.LittleEndian.AppendUint32(b[:0], crc)
	b = append(b, Magic...)
	if err := w.write(b); err != nil {
		return err
	}
	if _, err := w.sum(); err != nil {
		return err
	}
	w.err = errWriterClosed
	return nil
}
