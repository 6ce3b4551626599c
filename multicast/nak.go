package multicast

import (
	"encoding/binary"

	"github.com/google/uuid"
)

// Loss repair on the wire. A receiver that misses datagrams of a node's
// stream 0 multicasts a NAK (KindNAK); the node answers with a repair
// (KindRepair) to the whole group. Both are numbered in stream 1.
//
// NAK body, after the header, whose record count is the number of ranges:
//
//	target   16 bytes, the node asked to resend
//	ranges   per range: first uint64, last uint64 (first <= last, first >= 1)
//
// Repair body, whose record count is the number of entries; each entry is
//
//	length   uint16
//	         length > 0: a datagram of stream 0 as it was first sent
//	         (header and records, never sealed), of the repair's sender
//	         length = 0: first uint64, last uint64, a range of stream 0
//	         that the sender no longer holds: receivers skip it at once

// nakTargetLen is the size of a NAK's target node id.
const nakTargetLen = 16

// rangeLen is the size of one range on the wire.
const rangeLen = 16

// repairOverhead is what a repair carrying one datagram adds to it: its
// header and the entry's length.
const repairOverhead = HeaderLen + 2

// SeqRange is a range of sequence numbers, First to Last inclusive.
type SeqRange struct{ First, Last uint64 }

// Len is how many sequence numbers the range holds (0 for a range that
// overflows, which a valid range never does but for 1..MaxUint64).
func (r SeqRange) Len() uint64 { return r.Last - r.First + 1 }

// appendRange appends r as it is on the wire.
func appendRange(dst []byte, r SeqRange) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.First)
	return binary.BigEndian.AppendUint64(dst, r.Last)
}

// parseRange decodes the range at the start of b, which holds at least
// rangeLen bytes, and reports whether it is valid: first >= 1 and
// first <= last.
func parseRange(b []byte) (SeqRange, bool) {
	r := SeqRange{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
	return r, r.First != 0 && r.First <= r.Last
}

// RepairEntry is one entry of a repair: a datagram, or a range that is
// gone.
type RepairEntry struct {
	Datagram []byte   // a stream-0 datagram; aliases the repair; nil for a gone range
	Gone     SeqRange // when Datagram is nil
}

// AppendNAK appends a NAK's body asking target for ranges. The header's
// record count must be len(ranges), 1..MaxRecords.
func AppendNAK(dst []byte, target uuid.UUID, ranges []SeqRange) []byte {
	dst = append(dst, target[:]...)
	for _, r := range ranges {
		dst = appendRange(dst, r)
	}
	return dst
}

// ParseNAK decodes the body of a NAK whose header is h, appending its
// ranges to dst.
func ParseNAK(dst []SeqRange, h *Header, body []byte) (uuid.UUID, []SeqRange, error) {
	var target uuid.UUID
	want := nakTargetLen + rangeLen*h.Records
	switch {
	case len(body) < want:
		return target, dst, decodeErr(ErrTruncated, HeaderLen+len(body), "nak of %d ranges needs %d bytes, has %d", h.Records, want, len(body))
	case len(body) > want:
		return target, dst, decodeErr(ErrMalformed, HeaderLen+want, "%d bytes after the last range", len(body)-want)
	}
	copy(target[:], body)
	for i := range h.Records {
		off := nakTargetLen + rangeLen*i
		r, ok := parseRange(body[off:])
		if !ok {
			return target, dst, decodeErr(ErrMalformed, HeaderLen+off, "range %d is %d..%d", i, r.First, r.Last)
		}
		dst = append(dst, r)
	}
	return target, dst, nil
}

// AppendRepairDatagram appends a repair entry carrying datagram d, of at
// most 65535 bytes.
func AppendRepairDatagram(dst, d []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(d)))
	return append(dst, d...)
}

// AppendRepairGone appends a repair entry saying that r is gone.
func AppendRepairGone(dst []byte, r SeqRange) []byte {
	return appendRange(append(dst, 0, 0), r)
}

// ParseRepair decodes the body of a repair whose header is h, appending
// its entries to dst. It checks the layout only: each datagram inside is
// to be decoded on its own.
func ParseRepair(dst []RepairEntry, h *Header, body []byte) ([]RepairEntry, error) {
	off := HeaderLen
	for i := range h.Records {
		if len(body) < 2 {
			return dst, decodeErr(ErrTruncated, off+len(body), "repair entry %d: no length", i)
		}
		n := int(binary.BigEndian.Uint16(body))
		body = body[2:]
		off += 2
		if n == 0 {
			if len(body) < rangeLen {
				return dst, decodeErr(ErrTruncated, off+len(body), "repair entry %d: a gone range needs %d bytes, has %d", i, rangeLen, len(body))
			}
			r, ok := parseRange(body)
			if !ok {
				return dst, decodeErr(ErrMalformed, off, "repair entry %d: gone range %d..%d", i, r.First, r.Last)
			}
			dst = append(dst, RepairEntry{Gone: r})
			body = body[rangeLen:]
			off += rangeLen
			continue
		}
		if len(body) < n {
			return dst, decodeErr(ErrTruncated, off+len(body), "repair entry %d: a datagram of %d bytes, %d left", i, n, len(body))
		}
		dst = append(dst, RepairEntry{Datagram: body[:n:n]})
		body = body[n:]
		off += n
	}
	if len(body) != 0 {
		return dst, decodeErr(ErrMalformed, off, "%d bytes after the last repair entry", len(body))
	}
	return dst, nil
}
