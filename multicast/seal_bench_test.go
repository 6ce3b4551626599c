package multicast

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// benchSizes are datagram sizes: a small event, the default payload, and
// a jumbo frame's.
var benchSizes = []int{128, DefaultPayload, 9000}

// BenchmarkSeal seals one datagram of each size as the link's writer
// does: into a reused buffer, with its scratch nonce.
func BenchmarkSeal(b *testing.B) {
	s := mustSealer(b, "bench", "lab")
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			plain := plainDatagram(uuid.New(), KindData, 1, make([]byte, size-Overhead-TagLen))
			buf := make([]byte, 0, len(plain)+TagLen)
			var nonce [NonceLen]byte
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = s.seal(buf[:0], plain, &nonce); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen opens one datagram of each size in place, as the link's
// reader does, from a sender whose key is cached.
func BenchmarkOpen(b *testing.B) {
	s := mustSealer(b, "bench", "lab")
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			sealed, err := s.Seal(nil, plainDatagram(uuid.New(), KindData, 1, make([]byte, size-Overhead-TagLen)))
			if err != nil {
				b.Fatal(err)
			}
			work := make([]byte, len(sealed))
			var nonce [NonceLen]byte
			b.SetBytes(int64(len(sealed)))
			b.ReportAllocs()
			for b.Loop() {
				copy(work, sealed) // opening in place consumes it
				if _, err := s.open(work[:0], work, &nonce); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenForged opens a datagram that fails authentication, from
// a node id never seen: the cost of each datagram of a flood of forged
// node ids, a key derivation included.
func BenchmarkOpenForged(b *testing.B) {
	s := mustSealer(b, "bench", "lab")
	wrong := mustSealer(b, "wrong", "lab")
	sealed, err := wrong.Seal(nil, plainDatagram(uuid.New(), KindData, 1, make([]byte, 64)))
	if err != nil {
		b.Fatal(err)
	}
	work := make([]byte, len(sealed))
	var nonce [NonceLen]byte
	b.ReportAllocs()
	for b.Loop() {
		copy(work, sealed)
		if _, err := s.open(work[:0], work, &nonce); err == nil {
			b.Fatal("a forged datagram opened")
		}
	}
}
