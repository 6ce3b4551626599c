package channel

import (
	"fmt"
	"testing"
)

// TestFilterCache: decisions are right before and after the names are
// cached, and the cache stays within its bound however many names pass.
func TestFilterCache(t *testing.T) {
	f, err := compileInterest([]string{"a.*", "b|c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for name, want := range map[string]bool{"a": true, "ab": true, "b": true, "c": true, "bc": false, "xa": false} {
			if got := f.wants([]byte(name)); got != want {
				t.Errorf("round %d: wants(%q) = %v, want %v", round, name, got, want)
			}
		}
	}
	for i := range 5 * maxCachedNames {
		name := fmt.Sprintf("a%d", i)
		if !f.wants([]byte(name)) {
			t.Fatalf("wants(%q) = false", name)
		}
		if n := f.cached(); n > maxCachedNames+maxCachedNames/8+1 {
			t.Fatalf("after %d names the cache holds %d", i+1, n)
		}
	}
	// A name asked for often enough is in the map read without a lock.
	for range maxCachedNames {
		f.wants([]byte("b"))
	}
	if m := f.cache.cur.Load(); m == nil || !(*m)["b"] {
		t.Error("b is not in the lock-free map")
	}
}

// TestCompileInterestReuses: a declaration reuses the compiled regexps
// of the patterns the previous one had.
func TestCompileInterestReuses(t *testing.T) {
	prev, err := compileInterest([]string{"a", "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := compileInterest([]string{"b", "c"}, prev)
	if err != nil {
		t.Fatal(err)
	}
	if next.res[0] != prev.res[1] {
		t.Error("the regexp of b was compiled again")
	}
	if _, err := compileInterest([]string{"ok", "(bad"}, prev); err == nil {
		t.Error("a pattern that does not compile was taken")
	}
}

// BenchmarkFilterWants is the fan-out's cost per client with a filter:
// a cached name, and a name that has to be matched each time (the cache
// starting afresh, as when more names pass than it holds).
func BenchmarkFilterWants(b *testing.B) {
	patterns := make([]string, 64)
	for i := range patterns {
		patterns[i] = fmt.Sprintf("svc%d\\..*", i)
	}
	f, err := compileInterest(patterns, nil)
	if err != nil {
		b.Fatal(err)
	}
	name := []byte("svc63.update")
	b.Run("cached", func(b *testing.B) {
		f.wants(name)
		b.ReportAllocs()
		for b.Loop() {
			if !f.wants(name) {
				b.Fatal("not wanted")
			}
		}
	})
	b.Run("match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !f.match(name) {
				b.Fatal("not wanted")
			}
		}
	})
}
