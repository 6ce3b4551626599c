package mcap

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// File is an MCAP file that Open has checked from end to end.
type File struct {
	r         io.ReaderAt
	size      int64
	dataLimit int64 // where the data section ends: the summary, or the footer
	Library   string
	Profile   string
	Channels  map[uint16]*Channel // every channel of the data section
	// Statistics is the summary's Statistics record; nil when the file
	// has none.
	Statistics *Statistics
}

// footer is the Footer record's fields.
type footer struct {
	summaryStart, offsetsStart uint64
	crc                        uint32
	at                         int64 // where the Footer record starts
}

// Open checks a whole MCAP file of size bytes: the magic at both ends,
// the footer, every record of the data section and of the summary, and
// the CRCs. A file that fails any check gets a *FormatError naming the
// offset of the fault. It reads the file once, through a fixed buffer.
func Open(r io.ReaderAt, size int64) (*File, error) {
	f := &File{r: r, size: size, Channels: map[uint16]*Channel{}}
	if err := f.checkMagic(); err != nil {
		return nil, err
	}
	ft, err := f.readFooter()
	if err != nil {
		return nil, err
	}
	f.dataLimit = ft.at
	if ft.summaryStart != 0 {
		f.dataLimit = int64(ft.summaryStart)
	}
	if err := f.scanData(f.dataLimit, nil); err != nil {
		return nil, err
	}
	if ft.summaryStart != 0 {
		if err := f.checkSummary(ft); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *File) checkMagic() error {
	head := make([]byte, len(Magic))
	n, _ := f.r.ReadAt(head, 0)
	if string(head[:n]) != Magic[:n] {
		return formatErr(0, ErrNotMCAP, "the file does not start with the MCAP magic")
	}
	if n < len(Magic) || f.size < 2*int64(len(Magic))+footerSize {
		return formatErr(f.size, ErrTruncated, "the file ends after %d bytes, too short for an MCAP file", f.size)
	}
	tail := make([]byte, len(Magic))
	if _, err := f.r.ReadAt(tail, f.size-int64(len(Magic))); err != nil {
		return formatErr(f.size-int64(len(Magic)), ErrTruncated, "reading the closing magic: %v", err)
	}
	if string(tail) != Magic {
		return formatErr(f.size, ErrTruncated, "the file ends without the footer and closing magic (was its writer stopped before it finished?)")
	}
	return nil
}

func (f *File) readFooter() (footer, error) {
	ft := footer{at: f.size - int64(len(Magic)) - footerSize}
	b := make([]byte, footerSize)
	if _, err := f.r.ReadAt(b, ft.at); err != nil {
		return ft, formatErr(ft.at, ErrTruncated, "reading the footer: %v", err)
	}
	if b[0] != opFooter || binary.LittleEndian.Uint64(b[1:]) != footerSize-recordHeaderSize {
		return ft, formatErr(ft.at, ErrCorrupt, "no Footer record before the closing magic")
	}
	ft.summaryStart = binary.LittleEndian.Uint64(b[9:])
	ft.offsetsStart = binary.LittleEndian.Uint64(b[17:])
	ft.crc = binary.LittleEndian.Uint32(b[25:])
	if ft.summaryStart != 0 && (ft.summaryStart < uint64(len(Magic)) || ft.summaryStart > uint64(ft.at)) {
		return ft, formatErr(ft.at+9, ErrCorrupt, "the footer's summary start %d is outside the file", ft.summaryStart)
	}
	if ft.offsetsStart != 0 && (ft.offsetsStart < ft.summaryStart || ft.offsetsStart > uint64(ft.at)) {
		return ft, formatErr(ft.at+17, ErrCorrupt, "the footer's summary offset start %d is outside the summary", ft.offsetsStart)
	}
	return ft, nil
}

// recordReader reads whole records from a section of the file, checking
// that each fits before the section's limit.
type recordReader struct {
	br    *bufio.Reader
	off   int64 // file offset of the next record
	limit int64
	buf   []byte
	crc   func([]byte)
}

// next reads one record: its opcode, its content and the offset of its
// start. The content is valid until the next call.
func (rr *recordReader) next() (byte, []byte, int64, error) {
	at := rr.off
	if rr.limit-at < recordHeaderSize {
		return 0, nil, at, formatErr(at, ErrTruncated, "%d bytes left in the section, too few for a record", rr.limit-at)
	}
	var h [recordHeaderSize]byte
	if _, err := io.ReadFull(rr.br, h[:]); err != nil {
		return 0, nil, at, formatErr(at, ErrTruncated, "reading a record: %v", err)
	}
	n := binary.LittleEndian.Uint64(h[1:])
	if n > uint64(rr.limit-at-recordHeaderSize) {
		return 0, nil, at, formatErr(at, ErrCorrupt, "%s of %d bytes runs past the end of its section at offset %d", opName(h[0]), n, rr.limit)
	}
	if uint64(cap(rr.buf)) < n {
		rr.buf = make([]byte, n)
	}
	rr.buf = rr.buf[:n]
	if _, err := io.ReadFull(rr.br, rr.buf); err != nil {
		return 0, nil, at, formatErr(at, ErrTruncated, "reading %s: %v", opName(h[0]), err)
	}
	if rr.crc != nil {
		rr.crc(h[:])
		rr.crc(rr.buf)
	}
	rr.off += recordHeaderSize + int64(n)
	return h[0], rr.buf, at, nil
}

func (f *File) section(start, limit int64) *recordReader {
	return &recordReader{
		br:    bufio.NewReaderSize(io.NewSectionReader(f.r, start, limit-start), 64<<10),
		off:   start,
		limit: limit,
	}
}

// scanData reads the data section, from the header to the Data End
// record, which must end at limit. With fn nil it checks every record
// and learns the channels; with fn it hands each message to fn, in file
// order.
func (f *File) scanData(limit int64, fn func(*Channel, *Message) error) error {
	rr := f.section(int64(len(Magic)), limit)
	crc := crc32.NewIEEE()
	crc.Write([]byte(Magic))
	rr.crc = func(b []byte) { crc.Write(b) }
	op, body, at, err := rr.next()
	if err != nil {
		return err
	}
	if op != opHeader {
		return formatErr(at, ErrCorrupt, "the first record is %s, not Header", opName(op))
	}
	c := cursor{b: body, off: at + recordHeaderSize}
	f.Profile, f.Library = c.str("profile"), c.str("library")
	if c.err != nil {
		return c.err
	}
	var m Message
	for {
		sum := crc.Sum32()
		op, body, at, err := rr.next()
		if err != nil {
			return err
		}
		if op == opDataEnd {
			return checkDataEnd(body, at, sum, rr.off, limit)
		}
		if err := f.dataRecord(op, body, at, &m, fn); err != nil {
			return err
		}
	}
}

func checkDataEnd(body []byte, at int64, sum uint32, end, limit int64) error {
	c := cursor{b: body, off: at + recordHeaderSize}
	want := c.u32("data section crc")
	if c.err != nil {
		return c.err
	}
	if want != 0 && want != sum {
		return formatErr(at, ErrCRC, "the data section's CRC is %08x, the Data End record says %08x", sum, want)
	}
	if end != limit {
		return formatErr(end, ErrCorrupt, "%d bytes between the Data End record and the summary", limit-end)
	}
	return nil
}

// dataRecord checks one record of the data section or of a chunk.
func (f *File) dataRecord(op byte, body []byte, at int64, m *Message, fn func(*Channel, *Message) error) error {
	c := cursor{b: body, off: at + recordHeaderSize}
	switch op {
	case opHeader, opFooter, opDataEnd:
		return formatErr(at, ErrCorrupt, "a %s record inside the data section", opName(op))
	case opChannel:
		ch := parseChannel(&c)
		if c.err != nil {
			return c.err
		}
		if old, ok := f.Channels[ch.ID]; ok && fn == nil && !sameChannel(old, ch) {
			return formatErr(at, ErrCorrupt, "channel %d is defined twice, differently", ch.ID)
		}
		f.Channels[ch.ID] = ch
	case opMessage:
		parseMessage(&c, m)
		if c.err != nil {
			return c.err
		}
		ch, ok := f.Channels[m.ChannelID]
		if !ok {
			return formatErr(at, ErrCorrupt, "a message on channel %d, which no Channel record before it defines", m.ChannelID)
		}
		if fn != nil {
			return fn(ch, m)
		}
	case opChunk:
		return f.chunkRecords(&c, at, m, fn)
	}
	return nil // other records (schemas, indexes, attachments, metadata) are skipped
}

func sameChannel(a, b *Channel) bool {
	if a.SchemaID != b.SchemaID || a.Topic != b.Topic || a.MessageEncoding != b.MessageEncoding || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// chunkRecords checks an uncompressed chunk and the records in it.
func (f *File) chunkRecords(c *cursor, at int64, m *Message, fn func(*Channel, *Message) error) error {
	k := parseChunk(c)
	if c.err != nil {
		return c.err
	}
	records, err := decompressChunk(k, at)
	if err != nil {
		return err
	}
	if k.crc != 0 && crc32.ChecksumIEEE(records) != k.crc {
		return formatErr(at, ErrCRC, "the chunk's records have CRC %08x, the chunk says %08x", crc32.ChecksumIEEE(records), k.crc)
	}
	k.records = records
	for i := 0; i < len(k.records); {
		rat := k.recordsOff + int64(i)
		if k.compression != CompressNone {
			rat = at // a place in a compressed chunk names the chunk
		}
		if len(k.records)-i < recordHeaderSize {
			return formatErr(rat, ErrCorrupt, "%d bytes left in the chunk, too few for a record", len(k.records)-i)
		}
		op := k.records[i]
		n := binary.LittleEndian.Uint64(k.records[i+1:])
		if n > uint64(len(k.records)-i-recordHeaderSize) {
			return formatErr(rat, ErrCorrupt, "%s of %d bytes runs past the end of its chunk", opName(op), n)
		}
		body := k.records[i+recordHeaderSize : i+recordHeaderSize+int(n)]
		if op == opChunk {
			return formatErr(rat, ErrCorrupt, "a chunk inside a chunk")
		}
		if err := f.dataRecord(op, body, rat, m, fn); err != nil {
			return err
		}
		i += recordHeaderSize + int(n)
	}
	return nil
}

// checkSummary checks the summary section's CRC and records, and reads
// its Statistics.
func (f *File) checkSummary(ft footer) error {
	rr := f.section(int64(ft.summaryStart), ft.at)
	crc := crc32.NewIEEE()
	rr.crc = func(b []byte) { crc.Write(b) }
	for rr.off < ft.at {
		op, body, at, err := rr.next()
		if err != nil {
			return err
		}
		if op == opStatistics {
			c := cursor{b: body, off: at + recordHeaderSize}
			if f.Statistics = parseStatistics(&c); c.err != nil {
				return c.err
			}
		}
	}
	var head [footerSize - 4]byte
	if _, err := f.r.ReadAt(head[:], ft.at); err != nil {
		return formatErr(ft.at, ErrTruncated, "reading the footer: %v", err)
	}
	crc.Write(head[:])
	if ft.crc != 0 && crc.Sum32() != ft.crc {
		return formatErr(int64(ft.summaryStart), ErrCRC, "the summary's CRC is %08x, the footer says %08x", crc.Sum32(), ft.crc)
	}
	return nil
}

// Messages hands every message of the data section to fn, in file
// order, with its channel. m.Data is valid only during the call. An
// error from fn stops the walk and is returned.
func (f *File) Messages(fn func(ch *Channel, m *Message) error) error {
	return f.scanData(f.dataLimit, fn)
}
