package wire

import (
	"fmt"
	"unicode/utf8"
)

// InterestVersion is the first protocol version in which a client may
// declare its interest (PROTOCOL.md § 5.4): the event-name patterns it
// listens to, in its Hello and then in Interest frames, so that the
// server forwards it only the events it will use. The server answers
// each Interest frame with an Applied frame once it filters by it.
const InterestVersion = 4

// Interest limits. A client with more patterns than MaxPatterns declares
// All instead.
const (
	MaxPatterns   = 1024 // patterns in one declaration
	MaxPatternLen = 4096 // bytes in one pattern
)

// Interest is what a client listens to. A client that declares none (a
// nil *Interest in its Hello, or any client of an older version, or of
// the JSON text protocol) takes every event of its channel.
type Interest struct {
	// Seq numbers an Interest frame, so that the client knows which
	// declaration an Applied frame answers. A Hello's is 0.
	Seq uint64
	// All means every event: no filter. On the wire it is nil in place
	// of the list of patterns.
	All bool
	// Patterns are anchored RE2 regular expressions of event names, as
	// given to bus.Client.On; an event whose name matches one of them is
	// forwarded. With All unset and no patterns, the client takes only
	// the events addressed to it (requests to it and replies).
	Patterns []string
}

// interestFields is the one field a Hello of version 4 may carry after
// the resume fields.
const interestFields = 1

func appendPatterns(dst []byte, in *Interest) []byte {
	if in.All {
		return append(dst, 0xc0)
	}
	dst = appendArrayHeader(dst, len(in.Patterns))
	for _, p := range in.Patterns {
		dst = appendStr(dst, p)
	}
	return dst
}

// readPatterns reads nil, for All, or an array of at most MaxPatterns
// UTF-8 strings of at most MaxPatternLen bytes each.
func readPatterns(r *reader, in *Interest) {
	if r.err == nil && r.off < len(r.b) && formats[r.b[r.off]].kind == kindNil {
		r.off++
		in.All = true
		return
	}
	at := r.off
	n := r.arrayLen("patterns")
	switch {
	case r.err != nil:
		return
	case n > MaxPatterns:
		r.off = at
		r.fail(fmt.Sprintf("patterns: %d, at most %d", n, MaxPatterns))
		return
	case n > len(r.b)-r.off: // each pattern takes a byte at least
		r.fail("patterns: element count past end of frame")
		return
	}
	in.Patterns = make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		at := r.off
		p := r.str("pattern")
		switch {
		case r.err != nil:
		case len(p) > MaxPatternLen:
			r.off = at
			r.fail(fmt.Sprintf("pattern %d: %d bytes, at most %d", i, len(p), MaxPatternLen))
		case !utf8.Valid(p):
			r.off = at
			r.fail(fmt.Sprintf("pattern %d: not UTF-8", i))
		default:
			in.Patterns = append(in.Patterns, string(p))
		}
	}
}

// decodeHelloInterest reads the version 4 field of a Hello, when it is
// there, and returns how many extra fields are left.
func decodeHelloInterest(r *reader, h *Hello, extra int) int {
	if extra < interestFields {
		return extra // a client that declares nothing writes nothing
	}
	h.Interest = new(Interest)
	readPatterns(r, h.Interest)
	return extra - interestFields
}

// AppendInterest appends an Interest frame, [8, seq, patterns], which a
// client of version 4 sends whenever what it listens to changes.
func AppendInterest(dst []byte, in *Interest) []byte {
	dst, start := beginFrame(dst, FrameInterest, 2)
	dst = appendUint(dst, in.Seq)
	dst = appendPatterns(dst, in)
	return endFrame(dst, start)
}

// DecodeInterest decodes an Interest frame body. It checks the limits
// and the encoding, not that the patterns compile.
func DecodeInterest(body []byte) (Interest, error) {
	var in Interest
	r := &reader{b: body}
	extra := openFrame(r, FrameInterest, 2)
	in.Seq = r.uint("seq")
	readPatterns(r, &in)
	return in, closeFrame(r, extra)
}

// AppendApplied appends an Applied frame, [9, seq]: the server's answer
// to the Interest frame numbered seq, sent once every event it forwards
// from then on is filtered by that declaration.
func AppendApplied(dst []byte, seq uint64) []byte {
	dst, start := beginFrame(dst, FrameApplied, 1)
	dst = appendUint(dst, seq)
	return endFrame(dst, start)
}

// DecodeApplied decodes an Applied frame body and returns its seq.
func DecodeApplied(body []byte) (uint64, error) {
	r := &reader{b: body}
	extra := openFrame(r, FrameApplied, 1)
	seq := r.uint("seq")
	return seq, closeFrame(r, extra)
}
