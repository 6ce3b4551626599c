package mcap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sample is what the tests write: two channels and messages of several
// sizes, an empty one and one larger than the writer's buffer included.
type sample struct {
	topics []string
	msgs   []Message
	opts   []Option
}

// layouts are the ways the Writer lays out a file: unchunked, chunks of
// plain records (small, so that there are several), and lz4 chunks.
var layouts = []struct {
	name string
	opts []Option
}{
	{"unchunked", nil},
	{"chunked", []Option{Chunked(CompressNone, 200)}},
	{"lz4", []Option{Chunked(CompressLZ4, 200)}},
}

// newSamples is newSample in every layout.
func newSamples() map[string]sample {
	m := map[string]sample{}
	for _, l := range layouts {
		s := newSample()
		s.opts = l.opts
		m[l.name] = s
		m[l.name+"-empty"] = sample{opts: l.opts}
	}
	return m
}

func newSample() sample {
	big := bytes.Repeat([]byte{0xc4}, 100<<10)
	return sample{
		topics: []string{"A/log", "B/blob"},
		msgs: []Message{
			{ChannelID: 1, Sequence: 1, LogTime: 1_000, PublishTime: 1_000, Data: []byte{0xa2, 'h', 'i'}},
			{ChannelID: 2, Sequence: 1, LogTime: 2_000, PublishTime: 1_500, Data: []byte{}},
			{ChannelID: 1, Sequence: 2, LogTime: 3_000, PublishTime: 3_000, Data: big},
			{ChannelID: 2, Sequence: 2, LogTime: 4_000, PublishTime: 4_000, Data: []byte{0xc0}},
		},
	}
}

// write writes s as an MCAP file and returns its bytes.
func (s sample) write(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mcap test", s.opts...)
	if err != nil {
		t.Fatal(err)
	}
	for i, topic := range s.topics {
		id, err := w.AddChannel(topic, "msgpack", map[string]string{"n": strconv.Itoa(i), "channel": topic[:1]})
		if err != nil {
			t.Fatal(err)
		}
		if id != uint16(i+1) {
			t.Fatalf("AddChannel(%q) = %d, want %d", topic, id, i+1)
		}
	}
	for i := range s.msgs {
		if err := w.WriteMessage(&s.msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != w.Size() {
		t.Errorf("Size() = %d after Close, the file has %d bytes", w.Size(), buf.Len())
	}
	return buf.Bytes()
}

// readAll opens b and returns its messages, data copied.
func readAll(b []byte) (*File, []Message, error) {
	f, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, nil, err
	}
	var got []Message
	err = f.Messages(func(ch *Channel, m *Message) error {
		c := *m
		c.Data = bytes.Clone(m.Data)
		got = append(got, c)
		return nil
	})
	return f, got, err
}

func TestRoundTrip(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			s := newSample()
			s.opts = l.opts
			testRoundTrip(t, s)
		})
	}
}

func testRoundTrip(t *testing.T, s sample) {
	f, got, err := readAll(s.write(t))
	if err != nil {
		t.Fatal(err)
	}
	if f.Library != "mcap test" {
		t.Errorf("library %q, want %q", f.Library, "mcap test")
	}
	if len(got) != len(s.msgs) {
		t.Fatalf("read %d messages, wrote %d", len(got), len(s.msgs))
	}
	for i, m := range got {
		w := s.msgs[i]
		if m.ChannelID != w.ChannelID || m.Sequence != w.Sequence || m.LogTime != w.LogTime || m.PublishTime != w.PublishTime || !bytes.Equal(m.Data, w.Data) {
			t.Errorf("message %d: read %+v, wrote %+v", i, short(m), short(w))
		}
	}
	for i, topic := range s.topics {
		ch := f.Channels[uint16(i+1)]
		if ch == nil || ch.Topic != topic || ch.MessageEncoding != "msgpack" || ch.SchemaID != 0 || ch.Metadata["n"] != strconv.Itoa(i) {
			t.Errorf("channel %d: %+v", i+1, ch)
		}
	}
	st := f.Statistics
	if st == nil {
		t.Fatal("no statistics")
	}
	if st.MessageCount != 4 || st.ChannelCount != 2 || st.MessageStartTime != 1_000 || st.MessageEndTime != 4_000 || st.ChannelCounts[1] != 2 || st.ChannelCounts[2] != 2 {
		t.Errorf("statistics %+v", st)
	}
}

func short(m Message) Message {
	if len(m.Data) > 8 {
		m.Data = m.Data[:8]
	}
	return m
}

func TestEmptyRecording(t *testing.T) {
	f, got, err := readAll(sample{}.write(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || len(f.Channels) != 0 || f.Statistics == nil || f.Statistics.MessageCount != 0 {
		t.Errorf("an empty recording read as %d messages, %d channels, statistics %+v", len(got), len(f.Channels), f.Statistics)
	}
}

// TestMcapCoreReadsOurs has @mcap/core read what the Writer writes, and
// compares what it read with what was written.
func TestMcapCoreReadsOurs(t *testing.T) {
	for name, s := range newSamples() {
		t.Log(name)
		path := filepath.Join(t.TempDir(), "ours.mcap")
		if err := os.WriteFile(path, s.write(t), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := checkWithMcapCore(t, path)
		if err != nil {
			t.Fatalf("@mcap/core refuses our file: %v", err)
		}
		if c.Header.Library != "mcap test" || len(c.Channels) != len(s.topics) || c.SummaryChannels != len(s.topics) {
			t.Errorf("@mcap/core read header %+v, %d channels, %d in the summary", c.Header, len(c.Channels), c.SummaryChannels)
		}
		for i, ch := range c.Channels {
			if ch.ID != uint16(i+1) || ch.Topic != s.topics[i] || ch.MessageEncoding != "msgpack" || ch.Metadata["n"] != strconv.Itoa(i) {
				t.Errorf("@mcap/core read channel %+v", ch)
			}
		}
		if len(c.Messages) != len(s.msgs) {
			t.Fatalf("@mcap/core read %d messages, we wrote %d", len(c.Messages), len(s.msgs))
		}
		for i, m := range c.Messages {
			w := s.msgs[i]
			if m.ChannelID != w.ChannelID || m.Sequence != w.Sequence || m.LogTime != w.LogTime || m.PublishTime != w.PublishTime || m.Data != hex.EncodeToString(w.Data) {
				t.Errorf("@mcap/core read message %d as %+v, we wrote %+v", i, m, short(w))
			}
		}
		if c.Statistics == nil || c.Statistics.MessageCount != uint64(len(s.msgs)) || c.Statistics.ChannelCount != uint32(len(s.topics)) {
			t.Errorf("@mcap/core read statistics %+v", c.Statistics)
		}
		if s.opts == nil {
			continue
		}
		// A chunked file: @mcap/core finds every message again through
		// the chunk indexes of the summary and the message indexes.
		if c.ChunkIndexes < 2 && len(s.msgs) > 0 {
			t.Errorf("%s: @mcap/core found %d chunk indexes, want several", name, c.ChunkIndexes)
		}
		if len(c.IndexedMessages) != len(s.msgs) {
			t.Fatalf("%s: @mcap/core read %d messages through the indexes, we wrote %d", name, len(c.IndexedMessages), len(s.msgs))
		}
		for i, m := range c.IndexedMessages {
			w := s.msgs[i]
			if m.ChannelID != w.ChannelID || m.Sequence != w.Sequence || m.LogTime != w.LogTime || m.Data != hex.EncodeToString(w.Data) {
				t.Errorf("%s: @mcap/core read message %d through the indexes as %+v, we wrote %+v", name, i, m, short(w))
			}
		}
	}
}

// TestReadMcapCoreFile reads a chunked file that @mcap/core writes.
func TestReadMcapCoreFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "theirs.mcap")
	out, err := mcapcheck(t, "write", path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, got, err := readAll(b)
	if err != nil {
		t.Fatalf("we refuse the file @mcap/core wrote: %v", err)
	}
	want := string(out)
	if len(got) != 3 || f.Library != "mcapcheck" || f.Statistics == nil || f.Statistics.MessageCount != 3 {
		t.Fatalf("read %d messages, library %q, statistics %+v; @mcap/core wrote %s", len(got), f.Library, f.Statistics, want)
	}
	for _, m := range got {
		frag := `"channelId":` + strconv.Itoa(int(m.ChannelID)) + `,"sequence":` + strconv.Itoa(int(m.Sequence)) +
			`,"logTime":"` + strconv.FormatUint(m.LogTime, 10) + `","publishTime":"` + strconv.FormatUint(m.PublishTime, 10) +
			`","data":"` + hex.EncodeToString(m.Data) + `"`
		if !strings.Contains(want, frag) {
			t.Errorf("read a message %s that @mcap/core did not write: %s", frag, want)
		}
	}
	if ch := f.Channels[0]; ch == nil || ch.Topic != "A/log" || ch.Metadata["event"] != "log" {
		t.Errorf("channel 0 read as %+v", ch)
	}
}

func TestNotMCAP(t *testing.T) {
	for name, b := range map[string][]byte{
		"text":  []byte("this is not a recording\n"),
		"empty": {},
		"json":  []byte(`{"channel":"A","event":"log"}`),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := readAll(b)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FormatError", err)
			}
			if len(b) > 0 && (!errors.Is(err, ErrNotMCAP) || fe.Offset != 0) {
				t.Errorf("got %v, want ErrNotMCAP at offset 0", err)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %q names no offset", err)
			}
		})
	}
}

// TestTruncated cuts a file at every length: each piece is refused as
// truncated, and Messages is never reached.
func TestTruncated(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) { testTruncated(t, l.opts) })
	}
}

func testTruncated(t *testing.T, opts []Option) {
	s := newSample()
	s.msgs[2].Data = s.msgs[2].Data[:300]
	s.opts = opts
	b := s.write(t)
	for n := range len(b) {
		_, _, err := readAll(b[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("the first %d of %d bytes: got %v, want ErrTruncated", n, len(b), err)
		}
	}
	// @mcap/core agrees on a file cut inside a message and one cut just
	// before the footer.
	for _, n := range []int{len(b) / 2, len(b) - footerSize - len(Magic)} {
		path := filepath.Join(t.TempDir(), "cut.mcap")
		if err := os.WriteFile(path, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := checkWithMcapCore(t, path); err == nil {
			t.Errorf("@mcap/core accepts the first %d of %d bytes, which we refuse", n, len(b))
		}
	}
}

// TestCorrupt flips each byte of a file in turn: every flip is refused
// with a *FormatError, before Messages yields anything.
func TestCorrupt(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) { testCorrupt(t, l.opts) })
	}
}

func testCorrupt(t *testing.T, opts []Option) {
	s := newSample()
	s.msgs[2].Data = s.msgs[2].Data[:300]
	s.opts = opts
	b := s.write(t)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x41
		f, err := Open(bytes.NewReader(c), int64(len(c)))
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("byte %d flipped: Open returned %v (file %v), want a *FormatError", i, err, f != nil)
		}
		if fe.Offset < 0 || fe.Offset > int64(len(c)) {
			t.Fatalf("byte %d flipped: error names offset %d, outside the file", i, fe.Offset)
		}
	}
}

// TestErrorOffsets checks that errors name where the damage is.
func TestErrorOffsets(t *testing.T) {
	s := newSample()
	b := s.write(t)
	// A string whose length runs past its record: the error names the
	// length field.
	c := bytes.Clone(b)
	at := len(Magic)
	c[at+recordHeaderSize] ^= 0xff // the header's profile length
	_, _, err := readAll(c)
	var fe *FormatError
	if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) || fe.Offset != int64(at+recordHeaderSize) {
		t.Errorf("a bad profile length: got %v, want ErrCorrupt at offset %d", err, at+recordHeaderSize)
	}
	// A record whose length runs past the data section.
	c = bytes.Clone(b)
	c[at+1+7] = 0x10
	_, _, err = readAll(c)
	if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) || fe.Offset != int64(at) {
		t.Errorf("a huge record length: got %v, want ErrCorrupt at offset %d", err, at)
	}
	// A flipped data byte: the Data End record names the bad CRC.
	c = bytes.Clone(b)
	i := bytes.Index(c, []byte{0xa2, 'h', 'i'})
	c[i+1] = 'H'
	_, _, err = readAll(c)
	dataEnd := int64(bytes.LastIndex(b[:len(b)-100], []byte{opDataEnd, 4, 0, 0, 0, 0, 0, 0, 0}))
	if !errors.As(err, &fe) || !errors.Is(err, ErrCRC) || fe.Offset != dataEnd {
		t.Errorf("a flipped data byte: got %v, want ErrCRC at offset %d", err, dataEnd)
	}
}

// TestZeroCRCs: a CRC of 0 means "not computed", and such a file is
// read; the fuzz target starts from such files to get past the CRCs.
func TestZeroCRCs(t *testing.T) {
	for _, l := range layouts {
		s := newSample()
		s.opts = l.opts
		z := zeroCRCs(s.write(t))
		if z == nil {
			t.Fatalf("%s: no summary to find the CRCs by", l.name)
		}
		if _, got, err := readAll(z); err != nil || len(got) != len(s.msgs) {
			t.Errorf("%s with CRCs of 0: %d messages, %v", l.name, len(got), err)
		}
		z[len(Magic)+recordHeaderSize+8] ^= 1 // the library's name, unchecked now
		if _, _, err := readAll(z); err != nil {
			t.Errorf("%s: a changed byte is read without CRCs: %v", l.name, err)
		}
	}
}
