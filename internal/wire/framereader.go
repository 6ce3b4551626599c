package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// FrameReader reads length-prefixed frames from a stream.
type FrameReader struct {
	r   *bufio.Reader
	max int
	hdr [HeaderLen]byte // a local would escape through io.ReadFull
}

// NewFrameReader reads frames from r, refusing bodies over max bytes; a
// max of 0 or less means DefaultMaxFrame.
func NewFrameReader(r *bufio.Reader, max int) *FrameReader {
	fr := &FrameReader{r: r}
	fr.SetMax(max)
	return fr
}

// SetMax changes the largest body the reader accepts; 0 or less means
// DefaultMaxFrame.
func (fr *FrameReader) SetMax(max int) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	fr.max = max
}

// eagerAlloc is the largest body ReadFrame allocates in full as soon as
// it knows the length. A larger one grows as its bytes arrive, so that a
// peer that declares a large frame and sends nothing more holds no more
// than this much of the reader's memory.
const eagerAlloc = 64 << 10

// ReadFrame returns the next frame, length prefix included, in a new slice
// that the caller owns. A declared length over the limit is refused before
// anything is allocated; the stream is then unusable. At a clean end of
// stream between frames it returns io.EOF.
func (fr *FrameReader) ReadFrame() ([]byte, error) { return fr.ReadFrameWith(nil) }

// ReadFrameWith is ReadFrame reading into a buffer the caller supplies:
// once the frame's size (length prefix included) is known and within the
// limit, and the body is at most 64 KiB, it calls get(size) and reads
// the frame into the slice get returns, which must have a capacity of at
// least size bytes. The frame returned is that slice with length size.
// When get is nil or returns nil, or the body is larger, the frame is
// allocated as ReadFrame does. get is called at most once per frame, and
// not at all when the read fails before the size is known; after it was
// called, the buffer is the caller's again whether the read succeeds or
// not.
func (fr *FrameReader) ReadFrameWith(get func(size int) []byte) ([]byte, error) {
	// When the whole frame is in the buffer already, as it is for all
	// but the last of the frames that one read brought, copy it out in
	// one step.
	if b := fr.r.Buffered(); b >= HeaderLen {
		p, _ := fr.r.Peek(b)
		n := binary.BigEndian.Uint32(p)
		if size := HeaderLen + int(n); n != 0 && uint64(n) <= uint64(fr.max) && size <= b {
			frame := frameBuffer(get, size)
			copy(frame, p)
			fr.r.Discard(size)
			return frame, nil
		}
	}
	hdr := fr.hdr[:]
	if _, err := io.ReadFull(fr.r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 {
		return nil, &MalformedError{Reason: "empty frame"}
	}
	if uint64(n) > uint64(fr.max) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooBig, n, fr.max)
	}
	size := HeaderLen + int(n)
	var frame []byte
	if n <= eagerAlloc {
		frame = frameBuffer(get, size)
	} else {
		frame = make([]byte, HeaderLen+eagerAlloc)
	}
	copy(frame, hdr)
	for have := HeaderLen; have < size; {
		if have == len(frame) {
			frame = append(frame, make([]byte, min(size-have, have))...) // double, up to size
		}
		m, err := io.ReadFull(fr.r, frame[have:])
		have += m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return frame, nil
}

// Peek returns the next frame, length prefix included, when it lies
// whole in the reader's buffer, without copying it or moving past it;
// Skip(len(frame)) then does. It returns nil when the frame is not all
// buffered, or its declared length is 0 or over the limit: ReadFrame then
// reads it, or reports the error. The slice aliases the buffer and is
// valid until the next call of any method of the reader but Skip.
func (fr *FrameReader) Peek() []byte {
	b := fr.r.Buffered()
	if b < HeaderLen {
		return nil
	}
	p, _ := fr.r.Peek(b)
	n := binary.BigEndian.Uint32(p)
	if size := HeaderLen + int(n); n != 0 && uint64(n) <= uint64(fr.max) && size <= b {
		return p[:size:size]
	}
	return nil
}

// Skip moves past n bytes that Peek returned.
func (fr *FrameReader) Skip(n int) { fr.r.Discard(n) }

// frameBuffer returns a slice of length size for a frame of at most
// eagerAlloc bytes of body: from get when it gives one, else a new one.
func frameBuffer(get func(size int) []byte, size int) []byte {
	if get != nil && size <= HeaderLen+eagerAlloc {
		if b := get(size); cap(b) >= size {
			return b[:size]
		}
	}
	return make([]byte, size)
}
