package mcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/netcluster/netcluster/internal/seeds"
)

// fuzzCorpusDir holds MCAP files for FuzzRead to start from: files this
// package wrote, one @mcap/core wrote (chunked), and damaged ones.
const fuzzCorpusDir = "../../testdata/fuzz/mcap"

// FuzzRead feeds Open arbitrary bytes. Whatever the input, Open returns a
// File or a *FormatError, never panics; and a file Open accepts is read
// by Messages without error, each message on a channel Open knows.
func FuzzRead(f *testing.F) {
	for _, s := range seeds.Load(f, fuzzCorpusDir) {
		b := s.Data
		f.Add(b)
		if z := zeroCRCs(b); z != nil {
			f.Add(z)
		}
	}
	f.Add(sample{}.write(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Open returned %T %v, want a *FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(b)) {
				t.Fatalf("error names offset %d outside a file of %d bytes", fe.Offset, len(b))
			}
			return
		}
		err = file.Messages(func(ch *Channel, m *Message) error {
			if ch == nil || ch.ID != m.ChannelID {
				t.Fatalf("message on channel %d handed with channel %+v", m.ChannelID, ch)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Open accepted the file, Messages refused it: %v", err)
		}
	})
}

// zeroCRCs returns a copy of a whole file with its data section and
// summary CRCs set to 0, which means "not computed": mutations of it get
// past the CRC checks to the record parsers. Nil for a file without a
// summary.
func zeroCRCs(b []byte) []byte {
	end := len(b) - len(Magic) - footerSize
	if end < 0 || b[end] != opFooter {
		return nil
	}
	summary := binary.LittleEndian.Uint64(b[end+9:])
	if summary < 4 || summary > uint64(end) {
		return nil
	}
	z := bytes.Clone(b)
	clear(z[summary-4 : summary])
	clear(z[len(z)-len(Magic)-4 : len(z)-len(Magic)])
	return z
}

// TestWriteFuzzCorpus rewrites the seed files from the sample when
// MCAP_WRITE_CORPUS is set, so that they follow the writer.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("MCAP_WRITE_CORPUS") == "" {
		t.Skip("set MCAP_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	s := newSample()
	s.msgs[2].Data = s.msgs[2].Data[:40]
	b := s.write(t)
	bad := bytes.Clone(b)
	bad[len(bad)/2] ^= 1
	s.opts = []Option{Chunked(CompressLZ4, 64)}
	lz := s.write(t)
	s.opts = []Option{Chunked(CompressNone, 64)}
	chunked := s.write(t)
	for name, data := range map[string][]byte{
		"lz4.mcap":       lz,
		"chunked.mcap":   chunked,
		"sample.mcap":    b,
		"empty.mcap":     sample{}.write(t),
		"truncated.mcap": b[:len(b)*2/3],
		"badcrc.mcap":    bad,
	} {
		if err := os.WriteFile(filepath.Join(fuzzCorpusDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs(filepath.Join(fuzzCorpusDir, "mcapcore-chunked.mcap"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mcapcheck(t, "write", abs); err != nil {
		t.Fatal(err)
	}
}
