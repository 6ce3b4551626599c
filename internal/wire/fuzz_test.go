package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/netcluster/netcluster/internal/seeds"
	"github.com/vmihailenco/msgpack/v5"
)

// fuzzCorpusDir holds raw inputs for the fuzz targets, one per file:
// byte streams of length-prefixed frames written as seeds, and inputs the
// fuzzer found interesting (named found-*; a found-body-* file is a frame
// body without its prefix, for FuzzParseEvent).
const fuzzCorpusDir = "../../testdata/fuzz/frame"

// fuzzMaxFrame is the FrameReader limit under fuzzing: small, so that an
// input declaring a large frame is refused rather than allocated.
const fuzzMaxFrame = 4096

// corpus returns the contents of every file in a seed corpus directory;
// a directory with none fails the fuzz target, so that a moved corpus is
// noticed.
func corpus(f *testing.F, dir string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, s := range seeds.Load(f, dir) {
		out = append(out, s.Data)
	}
	return out
}

// fuzzSeeds returns every test vector's stream and every raw corpus file.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, v := range loadVectors(f) {
		seeds = append(seeds, v.Stream)
	}
	seeds = append(seeds, corpus(f, fuzzCorpusDir)...)
	return seeds
}

// twoPieces is a reader that returns its input in two pieces, never
// joining them in one Read, as a socket may deliver a stream.
type twoPieces struct{ first, second []byte }

func (p *twoPieces) Read(b []byte) (int, error) {
	cur := &p.first
	if len(*cur) == 0 {
		cur = &p.second
	}
	if len(*cur) == 0 {
		return 0, io.EOF
	}
	n := copy(b, *cur)
	*cur = (*cur)[n:]
	return n, nil
}

// readFrames reads frames from r until the first error, which it returns.
func readFrames(r io.Reader) ([][]byte, error) {
	fr := NewFrameReader(bufio.NewReaderSize(r, 16), fuzzMaxFrame)
	var frames [][]byte
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
}

// readFramesWith is readFrames through ReadFrameWith, reading into one
// buffer full of stale bytes, reused for every frame: what it returns
// must not depend on them.
func readFramesWith(r io.Reader) ([][]byte, error) {
	fr := NewFrameReader(bufio.NewReaderSize(r, 16), fuzzMaxFrame)
	buf := bytes.Repeat([]byte{0xc1}, 1<<10)
	get := func(size int) []byte {
		if size > len(buf) {
			return nil // too big for the pool: the reader allocates
		}
		return buf
	}
	var frames [][]byte
	for {
		f, err := fr.ReadFrameWith(get)
		if err != nil {
			return frames, err
		}
		frames = append(frames, bytes.Clone(f))
		copy(buf, bytes.Repeat([]byte{0xc1}, len(buf)))
	}
}

// FuzzDecodeFrame feeds a byte stream to a FrameReader in two pieces, cut
// where the fuzzer says, and every frame read to every decoder.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint16(0))
		f.Add(s, uint16(HeaderLen/2))
		f.Add(s, uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		cut := int(split) % (len(in) + 1)
		whole, wholeErr := readFrames(bytes.NewReader(in))
		frames, err := readFramesWith(&twoPieces{in[:cut:cut], in[cut:]})

		// The cut changes nothing, nor does reading into a buffer given.
		if len(frames) != len(whole) {
			t.Fatalf("cut at %d: %d frames, in one piece %d", cut, len(frames), len(whole))
		}
		for i := range frames {
			if !bytes.Equal(frames[i], whole[i]) {
				t.Fatalf("cut at %d: frame %d differs:\n% x\n% x", cut, i, frames[i], whole[i])
			}
		}
		if err.Error() != wholeErr.Error() {
			t.Fatalf("cut at %d: ended with %v, in one piece with %v", cut, err, wholeErr)
		}
		switch {
		case err == io.EOF, err == io.ErrUnexpectedEOF, errors.Is(err, ErrFrameTooBig), errors.Is(err, ErrBadFrame):
		default:
			t.Fatalf("ReadFrame ended with %v", err)
		}

		read := 0
		for _, frame := range frames {
			n := len(frame) - HeaderLen
			if n < 1 || n > fuzzMaxFrame || int(binary.BigEndian.Uint32(frame)) != n {
				t.Fatalf("frame of %d bytes with prefix % x", len(frame), frame[:HeaderLen])
			}
			if !bytes.Equal(frame, in[read:read+len(frame)]) {
				t.Fatalf("frame % x is not the input at %d", frame, read)
			}
			read += len(frame)
			checkBody(t, frame[HeaderLen:])
		}
		if err == io.EOF && read != len(in) {
			t.Fatalf("io.EOF after %d of %d bytes", read, len(in))
		}
	})
}

// FuzzParseEvent gives a frame body to ParseEvent and the other decoders,
// and compares the envelope's value skipping with vmihailenco/msgpack.
func FuzzParseEvent(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
		if len(s) > HeaderLen {
			f.Add(s[HeaderLen:])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// skipValue agrees with vmihailenco/msgpack: whatever it takes
		// as one value, msgpack skips as one value of the same length.
		// (Not the other way round: msgpack would allocate a declared
		// length before finding that the input is shorter.)
		r := reader{b: body}
		if v := r.skipValue("value"); r.err == nil {
			rd := bytes.NewReader(body)
			if err := msgpack.NewDecoder(rd).Skip(); err != nil {
				t.Fatalf("skipValue took % x as one value; msgpack says %v", v, err)
			}
			if used := len(body) - rd.Len(); used != len(v) {
				t.Fatalf("skipValue took %d bytes as one value, msgpack %d", len(v), used)
			}
		} else if !errors.Is(r.err, ErrBadFrame) {
			t.Fatalf("skipValue: %v", r.err)
		}

		// The fast path takes only what the general one takes, and
		// reads it the same way.
		if fast, ok := parseEventFast(body); ok {
			checkSameHeader(t, body, fast)
		}

		h, err := ParseEvent(body)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("ParseEvent: %v, not ErrBadFrame", err)
			}
			checkBody(t, body)
			return
		}
		if len(h.Event) > len(body) || len(h.Data) == 0 {
			t.Fatalf("ParseEvent: %+v", h)
		}
		rd := bytes.NewReader(h.Data)
		if err := msgpack.NewDecoder(rd).Skip(); err != nil || rd.Len() != 0 {
			t.Fatalf("data % x: msgpack Skip: %v, %d bytes left", h.Data, err, rd.Len())
		}
		checkBody(t, body)
	})
}

// checkBody runs every decoder on body and checks that they agree with
// each other and with TypeOf, and that what decodes survives encoding.
func checkBody(t *testing.T, body []byte) {
	t.Helper()
	typ, typErr := TypeOf(body)
	hdr, parseErr := ParseEvent(body)
	results := map[FrameType]struct {
		v   any
		err error
	}{}
	for _, ft := range frameTypes {
		v, err := decodeAs(ft, body)
		results[ft] = struct {
			v   any
			err error
		}{v, err}
		if err == nil {
			continue
		}
		var me *MalformedError
		if !errors.As(err, &me) || !errors.Is(err, ErrBadFrame) {
			t.Fatalf("%v decoder: %v is not a *MalformedError", ft, err)
		}
		if me.Offset < 0 || me.Offset > len(body) {
			t.Fatalf("%v decoder: offset %d outside a %d-byte body", ft, me.Offset, len(body))
		}
	}
	if (parseErr == nil) != (results[FrameEvent].err == nil) {
		t.Fatalf("ParseEvent says %v, DecodeEvent %v", parseErr, results[FrameEvent].err)
	}
	if typErr != nil && !errors.Is(typErr, ErrBadFrame) {
		t.Fatalf("TypeOf: %v", typErr)
	}
	ok := 0
	for ft, r := range results {
		if r.err != nil {
			continue
		}
		ok++
		if typErr != nil || typ != ft {
			t.Fatalf("the %v decoder accepts a body for which TypeOf says %v, %v", ft, typ, typErr)
		}
		// Encode, decode again: the same value, and a stable encoding
		// no longer than the input (extra fields and wide formats go).
		enc := appendFrame(nil, r.v)
		if len(enc)-HeaderLen > len(body) {
			t.Fatalf("re-encoding %v grew from %d to %d bytes", ft, len(body), len(enc)-HeaderLen)
		}
		back, err := decodeAs(ft, enc[HeaderLen:])
		if err != nil {
			t.Fatalf("decoding the re-encoded %v frame % x: %v", ft, enc, err)
		}
		if !reflect.DeepEqual(back, r.v) {
			t.Fatalf("re-encoded %v frame decodes to %+v, want %+v", ft, back, r.v)
		}
		if again := appendFrame(nil, back); !bytes.Equal(again, enc) {
			t.Fatalf("encoding is not stable:\n% x\n% x", enc, again)
		}
		if m, isEvent := r.v.(Message); isEvent {
			if string(hdr.Channel) != m.Channel || string(hdr.Event) != m.Event || !bytes.Equal(hdr.Data, m.Data) ||
				hdr.ID != m.ID || hdr.Origin != m.Origin || hdr.Sender != m.Sender {
				t.Fatalf("ParseEvent %+v and DecodeEvent %+v disagree", hdr, m)
			}
			if _, err := AppendData(nil, RawData(m.Data)); err != nil {
				t.Fatalf("the data of a decoded event is not one value: %v", err)
			}
		}
	}
	if ok > 1 {
		t.Fatalf("%d decoders accept the same body", ok)
	}
}

// checkSameHeader fails unless the general event decoder reads body as
// fast did, down to the capacity of the slices.
func checkSameHeader(t *testing.T, body []byte, fast EventHeader) {
	t.Helper()
	gen, err := parseEventGeneral(body)
	if err != nil {
		t.Fatalf("the fast path took % x, the general one says %v", body, err)
	}
	if !reflect.DeepEqual(fast, gen) || cap(fast.Channel) != cap(gen.Channel) || cap(fast.Event) != cap(gen.Event) || cap(fast.Data) != cap(gen.Data) {
		t.Fatalf("body % x:\nfast    %+v\ngeneral %+v", body, fast, gen)
	}
}
