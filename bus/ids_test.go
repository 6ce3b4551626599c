package bus

import (
	"testing"

	"github.com/google/uuid"
)

func TestIDSource(t *testing.T) {
	a, b := newIDSource(), newIDSource()
	seen := make(map[uuid.UUID]bool)
	for range 10000 {
		for _, s := range []*idSource{a, b} {
			id := s.next()
			if id.Version() != 4 || id.Variant() != uuid.RFC4122 {
				t.Fatalf("id %v: version %v, variant %v; want 4, RFC 4122", id, id.Version(), id.Variant())
			}
			if seen[id] {
				t.Fatalf("id %v twice", id)
			}
			seen[id] = true
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	b.Run("uuid.New", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = uuid.New()
		}
	})
	b.Run("idSource", func(b *testing.B) {
		b.ReportAllocs()
		s := newIDSource()
		for b.Loop() {
			_ = s.next()
		}
	})
}

// TestIDSourceAllocs checks that making an event id, once per Emit,
// allocates nothing.
func TestIDSourceAllocs(t *testing.T) {
	s := newIDSource()
	if n := testing.AllocsPerRun(100, func() { s.next() }); n != 0 {
		t.Errorf("%v allocations per id, want 0", n)
	}
}
