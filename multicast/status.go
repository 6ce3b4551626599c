package multicast

import (
	"encoding/binary"

	"github.com/google/uuid"
)

// Flow control on the wire. Every receiver multicasts status datagrams
// (KindStatus, numbered in stream 1): for each sender whose stream 0 it
// keeps, how far it has got and how much more it can take. Senders read
// the entries that name them and keep in flight no more than their
// slowest live receiver can take (flow.go).
//
// Status body, after the header, whose record count is the number of
// entries (0 to MaxRecords: a status with none only says that its
// sender is alive); each entry is
//
//	node      16 bytes, the sender whose stream 0 is reported
//	position  uint64, the highest sequence number of that stream the
//	          receiver has processed in order (skipped gaps included)
//	window    uint32, how many datagrams past position it can take

// statusEntryLen is the size of one status entry on the wire.
const statusEntryLen = 16 + 8 + 4

// StatusEntry is one entry of a status: a receiver's progress in one
// sender's stream 0.
type StatusEntry struct {
	Node     uuid.UUID // the sender reported on
	Position uint64    // its highest sequence number processed in order
	Window   uint32    // datagrams past Position the receiver can take
}

// AppendStatus appends a status body of entries. The header's record
// count must be len(entries), at most MaxRecords.
func AppendStatus(dst []byte, entries []StatusEntry) []byte {
	for _, e := range entries {
		dst = append(dst, e.Node[:]...)
		dst = binary.BigEndian.AppendUint64(dst, e.Position)
		dst = binary.BigEndian.AppendUint32(dst, e.Window)
	}
	return dst
}

// ParseStatus decodes the body of a status whose header is h, appending
// its entries to dst.
func ParseStatus(dst []StatusEntry, h *Header, body []byte) ([]StatusEntry, error) {
	want := statusEntryLen * h.Records
	switch {
	case len(body) < want:
		return dst, decodeErr(ErrTruncated, HeaderLen+len(body), "status of %d entries needs %d bytes, has %d", h.Records, want, len(body))
	case len(body) > want:
		return dst, decodeErr(ErrMalformed, HeaderLen+want, "%d bytes after the last status entry", len(body)-want)
	}
	for i := range h.Records {
		b := body[i*statusEntryLen:]
		var e StatusEntry
		copy(e.Node[:], b[:16])
		e.Position = binary.BigEndian.Uint64(b[16:])
		e.Window = binary.BigEndian.Uint32(b[24:])
		dst = append(dst, e)
	}
	return dst, nil
}
