package channel

import (
	"testing"
)

func TestSizeClass(t *testing.T) {
	for _, tt := range []struct {
		size, class, n int
	}{
		{1, 0, 64},
		{64, 0, 64},
		{65, 1, 80},
		{80, 1, 80},
		{81, 2, 96},
		{128, 4, 128},
		{129, 5, 160},
		{185, 6, 192},
		{1024, 16, 1024},
		{1025, 17, 1280},
		{32<<10 + 100, 37, 40 << 10},
		{64 << 10, 40, 64 << 10},
		{64<<10 + 1, -1, 0},
	} {
		class, n := sizeClass(tt.size)
		if class != tt.class || n != tt.n {
			t.Errorf("sizeClass(%d) = %d, %d; want %d, %d", tt.size, class, n, tt.class, tt.n)
		}
	}
	// Every class is larger than the one before, and holds the sizes
	// that map to it.
	prev := 0
	for size := 1; size <= maxPooled; size++ {
		class, n := sizeClass(size)
		if n < size || class < 0 || class >= numClasses {
			t.Fatalf("sizeClass(%d) = %d, %d", size, class, n)
		}
		if class != prev && class != prev+1 {
			t.Fatalf("sizeClass(%d) = %d after class %d", size, class, prev)
		}
		prev = class
	}
	if prev != numClasses-1 {
		t.Errorf("the largest class is %d, want %d", prev, numClasses-1)
	}
}

func TestFrameBufRefs(t *testing.T) {
	fb := getFrameBuf(100)
	if len(fb.b) < 100 || cap(fb.b) != len(fb.b) {
		t.Fatalf("buffer of %d bytes (cap %d) for a 100-byte frame", len(fb.b), cap(fb.b))
	}
	// Two queues take it; one writes it before the reader settles.
	fb.release()
	fb.settle(2)
	if n := fb.refs.Load(); n != 1 {
		t.Fatalf("%d references after settling 2 with 1 released, want 1", n)
	}
	fb.release()
	if poisonReleased {
		for i, c := range fb.b {
			if c != poisonByte {
				t.Fatalf("released buffer byte %d is %#x, want the poison %#x", i, c, poisonByte)
			}
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("releasing a released buffer did not panic")
			}
		}()
		fb.release()
	}()
	fb.refs.Store(0)
	if getFrameBuf(maxPooled+1) != nil {
		t.Error("a buffer for a frame over the largest class")
	}
}
