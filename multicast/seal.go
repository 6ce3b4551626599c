package multicast

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/uuid"
)

// Sealing. With a shared secret, every datagram is sealed with AES-256-GCM:
// the 38-byte header stays readable and is the AEAD's additional data, and
// everything after it is encrypted and followed by a 16-byte tag. Each
// sender has its own key, derived from the secret:
//
//	key   = HKDF-SHA256(secret, salt = cluster id, info = "netcluster seal v1 " + node id, 32 bytes)
//	nonce = uint32 stream (0 for data and heartbeats, 1 for NAKs and repairs) + uint64 sequence number
//
// A node numbers each stream's datagrams once, so no nonce repeats under
// one key as long as a node id is used by one run of one server only:
// routers draw a random node id at each start.

const (
	// FlagSealed is the header flag of a sealed datagram.
	FlagSealed = 1
	// TagLen is what sealing adds to a datagram: the AEAD's tag.
	TagLen = 16
	// NonceLen is the size of a sealed datagram's nonce.
	NonceLen = 12
	// sealInfo starts the HKDF info of each sender's key; the node id
	// follows.
	sealInfo = "netcluster seal v1 "
)

// ErrForged reports a sealed datagram that fails authentication: it was
// sealed with another key, or changed on the way.
var ErrForged = errors.New("multicast: datagram fails authentication")

// maxSealKeys bounds the senders' keys a Sealer keeps. A receiver keeps
// only the keys of senders whose datagrams authenticated, so a flood of
// forged node ids costs one key derivation each (a few microseconds) but
// no memory.
const maxSealKeys = 1024

// Sealer seals and opens the datagrams of one cluster with one shared
// secret. It is safe for concurrent use.
type Sealer struct {
	secret []byte
	salt   ClusterID

	mu   sync.Mutex
	keys map[uuid.UUID]cipher.AEAD // senders whose datagrams authenticated, and this node
}

// NewSealer returns a Sealer for the datagrams of cluster sealed with
// secret, which must not be empty. It keeps a copy of secret.
func NewSealer(secret []byte, cluster string) (*Sealer, error) {
	if len(secret) == 0 {
		return nil, errors.New("multicast: the sealing key is empty")
	}
	return &Sealer{secret: slices.Clone(secret), salt: ClusterIDOf(cluster), keys: make(map[uuid.UUID]cipher.AEAD)}, nil
}

// String never shows the secret.
func (s *Sealer) String() string { return "multicast.Sealer(key redacted)" }

// derive returns the AEAD of node's datagrams.
func (s *Sealer) derive(node uuid.UUID) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, s.secret, s.salt[:], sealInfo+string(node[:]), 32)
	if err != nil {
		return nil, fmt.Errorf("multicast: deriving the key of node %v: %w", node, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// aead returns node's AEAD, from the cache or freshly derived; cached
// tells which. A fresh one is cached only by keep.
func (s *Sealer) aead(node uuid.UUID) (a cipher.AEAD, cached bool, err error) {
	s.mu.Lock()
	a = s.keys[node]
	s.mu.Unlock()
	if a != nil {
		return a, true, nil
	}
	a, err = s.derive(node)
	return a, false, err
}

// keep caches node's AEAD, making room when the cache is full.
func (s *Sealer) keep(node uuid.UUID, a cipher.AEAD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) >= maxSealKeys {
		for n := range s.keys { // any one: all of them authenticated
			delete(s.keys, n)
			break
		}
	}
	s.keys[node] = a
}

// streamOf returns the sequence stream of a datagram kind: 0 for data and
// heartbeats, 1 for NAKs, repairs and statuses (kinds 3 to 5).
func streamOf(k Kind) (uint32, bool) {
	switch k {
	case KindData, KindHeartbeat:
		return 0, true
	case KindNAK, KindRepair, KindStatus:
		return 1, true
	}
	return 0, false
}

// sealedHeader checks the fixed header of a datagram to seal or open
// (sealed), and that one to open is long enough for its tag, and returns
// its node, and its nonce in nonce.
func sealedHeader(b []byte, sealed bool, nonce *[NonceLen]byte) (uuid.UUID, error) {
	switch {
	case len(b) < HeaderLen:
		return uuid.UUID{}, decodeErr(ErrTruncated, len(b), "%d bytes, the header needs %d", len(b), HeaderLen)
	case b[0] != magic[0] || b[1] != magic[1]:
		return uuid.UUID{}, decodeErr(ErrMagic, 0, "want 6e63 (\"nc\"), got %02x%02x", b[0], b[1])
	case b[2] != Version:
		return uuid.UUID{}, decodeErr(ErrVersion, 2, "version %d, this node speaks %d", b[2], Version)
	case sealed && b[4] != FlagSealed:
		return uuid.UUID{}, decodeErr(ErrKind, 4, "flags %#02x, a sealed datagram has %#02x", b[4], FlagSealed)
	case !sealed && b[4] != 0:
		return uuid.UUID{}, decodeErr(ErrKind, 4, "flags %#02x, a datagram to seal has none", b[4])
	}
	stream, ok := streamOf(Kind(b[3]))
	if !ok {
		return uuid.UUID{}, decodeErr(ErrKind, 3, "unknown %v", Kind(b[3]))
	}
	if sealed && len(b) < HeaderLen+TagLen {
		return uuid.UUID{}, fmt.Errorf("%w: %d bytes, a sealed datagram has at least %d", ErrForged, len(b), HeaderLen+TagLen)
	}
	binary.BigEndian.PutUint32(nonce[:4], stream)
	copy(nonce[4:], b[seqAt:HeaderLen])
	return uuid.UUID(b[14:30]), nil
}

// senderKey checks the header of b, a datagram to seal or a sealed one
// to open (sealed), puts its nonce in nonce, and returns its sender and
// the sender's AEAD; cached tells whether the AEAD came from the cache.
func (s *Sealer) senderKey(b []byte, sealed bool, nonce *[NonceLen]byte) (node uuid.UUID, a cipher.AEAD, cached bool, err error) {
	if node, err = sealedHeader(b, sealed, nonce); err != nil {
		return node, nil, false, err
	}
	a, cached, err = s.aead(node)
	return node, a, cached, err
}

// Seal appends to dst the sealed form of the datagram plain (header and
// records, flags 0): its header with FlagSealed set, then its records
// encrypted, then the tag. dst must not overlap plain.
func (s *Sealer) Seal(dst, plain []byte) ([]byte, error) {
	var nonce [NonceLen]byte
	return s.seal(dst, plain, &nonce)
}

// seal is Seal with the caller's scratch space for the nonce, so that
// the link's writer seals without allocating.
func (s *Sealer) seal(dst, plain []byte, nonce *[NonceLen]byte) ([]byte, error) {
	node, a, cached, err := s.senderKey(plain, false, nonce)
	if err != nil {
		return dst, err
	}
	if !cached {
		s.keep(node, a)
	}
	n := len(dst)
	dst = slices.Grow(dst, len(plain)+TagLen)
	dst = append(dst, plain[:HeaderLen]...)
	dst[n+4] |= FlagSealed
	return a.Seal(dst, nonce[:], plain[HeaderLen:], dst[n:n+HeaderLen]), nil
}

// Open appends to dst the plain form of the sealed datagram b: its header
// with FlagSealed cleared, then its records decrypted. A datagram that
// fails authentication is ErrForged; one that is not a sealed datagram of
// a kind this package knows is a *DecodeError. To open b in place, pass
// b[:0] as dst; otherwise dst must not overlap b. On failure, what dst
// held past its length may be overwritten, and so may b when opened in
// place.
func (s *Sealer) Open(dst, b []byte) ([]byte, error) {
	var nonce [NonceLen]byte
	return s.open(dst, b, &nonce)
}

// open is Open with the caller's scratch space for the nonce.
func (s *Sealer) open(dst, b []byte, nonce *[NonceLen]byte) ([]byte, error) {
	node, a, cached, err := s.senderKey(b, true, nonce)
	if err != nil {
		return dst, err
	}
	n := len(dst)
	out := append(dst, b[:HeaderLen]...) // in place, a copy onto itself
	out, err = a.Open(out, nonce[:], b[HeaderLen:], b[:HeaderLen])
	if err != nil {
		return dst, ErrForged
	}
	out[n+4] &^= FlagSealed
	if !cached {
		s.keep(node, a)
	}
	return out, nil
}
