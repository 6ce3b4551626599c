package bus

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// idSource makes the ids of a client's events: version 4 UUIDs whose
// random bits come from a ChaCha8 stream seeded once from crypto/rand.
// Ids need to be unique, not secret; reading the system's randomness for
// each event (what uuid.New does) cost Emit more than encoding the
// frame.
type idSource struct {
	mu  sync.Mutex
	rng *rand.ChaCha8
}

func newIDSource() *idSource {
	var seed [32]byte
	crand.Read(seed[:]) // never fails on supported systems (crypto/rand)
	return &idSource{rng: rand.NewChaCha8(seed)}
}

// next returns a fresh version 4 (random) UUID.
func (s *idSource) next() uuid.UUID {
	var id uuid.UUID
	s.mu.Lock()
	// Two words, not Read: Read buffers what a call leaves of a block,
	// which cost twice as much per id.
	hi, lo := s.rng.Uint64(), s.rng.Uint64()
	s.mu.Unlock()
	binary.LittleEndian.PutUint64(id[:8], hi)
	binary.LittleEndian.PutUint64(id[8:], lo)
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // variant RFC 4122
	return id
}
