package main

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// An event's data in every run is one msgpack bin value of -size bytes:
// the publisher's number (4 bytes), the event's sequence number (8
// bytes), and fill bytes that depend on both, so that a receiver can tell
// an event that arrived intact from one that did not.
const payloadHead = 12

// minSize is the smallest event size: the head and at least one fill byte.
const minSize = payloadHead + 1

// binHeader returns the msgpack bin header for n bytes.
func binHeader(n int) []byte {
	switch {
	case n <= 0xff:
		return []byte{0xc4, byte(n)}
	case n <= 0xffff:
		return []byte{0xc5, byte(n >> 8), byte(n)}
	}
	return []byte{0xc6, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// newPayload returns a msgpack bin value of size bytes; fillPayload
// writes an event into the part after the header, at off.
func newPayload(size int) (buf []byte, off int) {
	h := binHeader(size)
	return append(h, make([]byte, size)...), len(h)
}

// fillPayload writes publisher pub's event seq into p.
func fillPayload(p []byte, pub uint32, seq uint64) {
	binary.BigEndian.PutUint32(p, pub)
	binary.BigEndian.PutUint64(p[4:], seq)
	f := byte(seq) ^ byte(pub)
	for i := payloadHead; i < len(p); i++ {
		p[i] = f + byte(i)
	}
}

// parsePayload checks an event's data (the msgpack bin value) and returns
// its publisher and sequence number; ok is false when the data is not
// what a publisher of size bytes sends.
func parsePayload(data []byte, size int) (pub uint32, seq uint64, ok bool) {
	var h int
	switch {
	case len(data) == 0:
		return 0, 0, false
	case data[0] == 0xc4 && size <= 0xff:
		h = 2
	case data[0] == 0xc5 && size > 0xff && size <= 0xffff:
		h = 3
	case data[0] == 0xc6 && size > 0xffff:
		h = 5
	default:
		return 0, 0, false
	}
	if len(data) != h+size {
		return 0, 0, false
	}
	p := data[h:]
	pub = binary.BigEndian.Uint32(p)
	seq = binary.BigEndian.Uint64(p[4:])
	f := byte(seq) ^ byte(pub)
	for i := payloadHead; i < len(p); i++ {
		if p[i] != f+byte(i) {
			return 0, 0, false
		}
	}
	return pub, seq, true
}

// seqCounter counts one receiver's events from one publisher. Only an
// event whose sequence number is the next one expected counts as
// delivered; a jump forward counts the skipped events as lost, and an
// event from the past (a duplicate or a late one) counts as reordered.
// Of those, an event that had arrived before counts as doubled too; the
// counter tells them apart by the gaps it has seen (the most recent
// maxGaps of them; an older gap's late events count as doubled).
type seqCounter struct {
	next      uint64
	ok        uint64
	lost      uint64
	reordered uint64
	doubled   uint64
	gaps      []gap // the skipped ranges, in order
}

// gap is a range of sequence numbers skipped: [from, to).
type gap struct{ from, to uint64 }

// maxGaps bounds the gaps a seqCounter remembers.
const maxGaps = 4096

func (s *seqCounter) see(seq uint64) {
	switch {
	case seq == s.next:
		s.ok++
		s.next++
	case seq > s.next:
		s.lost += seq - s.next
		if len(s.gaps) == maxGaps {
			s.gaps = append(s.gaps[:0], s.gaps[1:]...)
		}
		s.gaps = append(s.gaps, gap{s.next, seq})
		s.ok++
		s.next = seq + 1
	default:
		s.reordered++
		if !s.fill(seq) {
			s.doubled++
		}
	}
}

// fill takes a late seq out of the gap that holds it, and reports false
// when no gap does: seq had arrived already.
func (s *seqCounter) fill(seq uint64) bool {
	i, _ := slices.BinarySearchFunc(s.gaps, seq, func(g gap, seq uint64) int { return cmp.Compare(g.to, seq+1) })
	if i == len(s.gaps) || seq < s.gaps[i].from {
		return false
	}
	switch g := s.gaps[i]; {
	case g.from == seq && g.to == seq+1:
		s.gaps = slices.Delete(s.gaps, i, i+1)
	case g.from == seq:
		s.gaps[i].from++
	case g.to == seq+1:
		s.gaps[i].to--
	default:
		s.gaps = slices.Insert(s.gaps, i+1, gap{seq + 1, g.to})
		s.gaps[i].to = seq
	}
	return true
}

// finish counts as lost whatever of sent events never arrived after the
// last one that did.
func (s *seqCounter) finish(sent uint64) {
	if sent > s.next {
		s.lost += sent - s.next
		s.next = sent
	}
}

func checkSize(size int) error {
	if size < minSize || size > 16<<20 {
		return fmt.Errorf("-size %d: want %d bytes to 16 MiB", size, minSize)
	}
	return nil
}
