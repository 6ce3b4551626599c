package channel

import (
	"testing"
	"unsafe"
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

// TestQueueSlab checks which frames share a queue entry: consecutive
// frames of one slab, and nothing else; and that the queue still counts
// every frame.
func TestQueueSlab(t *testing.T) {
	slab := make([]byte, 40)
	other := make([]byte, 40)
	in := unsafe.SliceData(slab)
	var q sendQueue
	q.addIn(slab[0:10], in, 40, nil, 1)
	q.addIn(slab[10:20], in, 40, nil, 1)                     // joins
	q.addIn(slab[20:25], in, 40, nil, 1)                     // joins
	q.addIn(slab[30:35], in, 40, nil, 1)                     // not adjacent
	q.addIn(other[0:5], unsafe.SliceData(other), 40, nil, 1) // another slab
	q.addIn(other[5:10], nil, 0, nil, 1)                     // says no slab
	q.add(slab[35:40], nil, 1)                               // add never joins
	fb := &frameBuf{b: make([]byte, 64)}
	q.addIn(slab[40:40], in, 40, fb, 1) // a pooled buffer never joins
	if got, want := len(q.frames), 6; got != want {
		t.Fatalf("%d entries, want %d", got, want)
	}
	if len(q.frames[0]) != 25 || unsafe.SliceData(q.frames[0]) != in {
		t.Errorf("the first entry is %d bytes at %p, want 25 at %p", len(q.frames[0]), unsafe.SliceData(q.frames[0]), in)
	}
	if got := q.events(); got != 8 {
		t.Errorf("the queue counts %d frames, want 8", got)
	}
	if q.cost != 8 {
		t.Errorf("the queue costs %d, want 8", q.cost)
	}
	if q.refs[1] != nil || q.refs[2] != nil {
		t.Error("a frame was copied out of its slab though no run was sparse") // slab's was 30 of 40 bytes; other's has not ended
	}
	q.refs[len(q.refs)-1] = nil // not a real reference
	q.release()
	if q.events() != 0 || q.run.slab != nil {
		t.Errorf("after release: %d frames, slab %p", q.events(), q.run.slab)
	}
	q.addIn(slab[25:30], in, 40, nil, 1) // the released queue's last entry is gone
	q.addIn(slab[30:35], in, 40, nil, 1)
	if len(q.frames) != 1 || q.events() != 2 {
		t.Errorf("after release: %d entries of %d frames, want 1 of 2", len(q.frames), q.events())
	}
}

// TestQueueSparseSlab checks that a queue keeps no slab alive for a few
// of its frames: the entries of a slab of which the queue took less than
// half become copies once a frame of another slab comes, and keep their
// bytes; the others stay in their slab. A batch the writer has taken
// counts towards the slab's share (follow).
func TestQueueSparseSlab(t *testing.T) {
	fill := func(b []byte) []byte {
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	sparse, dense, next := fill(make([]byte, 1000)), fill(make([]byte, 100)), make([]byte, 100)
	var q sendQueue
	q.addIn(sparse[0:10], unsafe.SliceData(sparse), len(sparse), nil, 1)
	q.addIn(sparse[500:520], unsafe.SliceData(sparse), len(sparse), nil, 1)
	q.addIn(sparse[520:530], unsafe.SliceData(sparse), len(sparse), nil, 1) // joins: 30 bytes
	q.addIn(dense[0:60], unsafe.SliceData(dense), len(dense), nil, 1)       // the sparse run ends
	q.addIn(next[0:10], unsafe.SliceData(next), len(next), nil, 1)          // the dense run ends
	if len(q.frames) != 4 {
		t.Fatalf("%d entries, want 4", len(q.frames))
	}
	for i, want := range [][]byte{sparse[0:10], sparse[500:530]} {
		got := q.frames[i]
		if q.refs[i] == nil || unsafe.SliceData(got) == unsafe.SliceData(want) || string(got) != string(want) {
			t.Errorf("entry %d: pooled %v, in the slab %v, same bytes %v; want a pooled copy of the same bytes",
				i, q.refs[i] != nil, unsafe.SliceData(got) == unsafe.SliceData(want), string(got) == string(want))
		}
	}
	if q.refs[2] != nil || unsafe.SliceData(q.frames[2]) != unsafe.SliceData(dense) {
		t.Error("60 bytes of a slab of 100 were copied out of it")
	}
	extra := 0
	for i, n := range []int{10, 30} {
		extra += entryCost(q.frames[i], q.refs[i]) - (n + entryOverhead)
	}
	if q.events() != 5 || q.cost != 5+extra || extra <= 0 {
		t.Errorf("%d frames costing %d, want 5 costing %d: the copies' pooled buffers count", q.events(), q.cost, 5+extra)
	}
	q.release()

	// 40 bytes of the slab went with a batch; 20 more come after it:
	// 60 of 100, which stay in the slab.
	var batch, after sendQueue
	batch.addIn(dense[0:40], unsafe.SliceData(dense), len(dense), nil, 1)
	after.follow(&batch)
	after.addIn(dense[40:60], unsafe.SliceData(dense), len(dense), nil, 1)
	after.addIn(next[0:10], unsafe.SliceData(next), len(next), nil, 1)
	if after.refs[0] != nil {
		t.Error("the rest of a slab whose start went with a batch was copied out of it")
	}
	// Without the batch, 20 of 100 are copied.
	var alone sendQueue
	alone.addIn(dense[40:60], unsafe.SliceData(dense), len(dense), nil, 1)
	alone.addIn(next[0:10], unsafe.SliceData(next), len(next), nil, 1)
	if alone.refs[0] == nil || string(alone.frames[0]) != string(dense[40:60]) {
		t.Error("20 bytes of a slab of 100 stayed in it")
	}
	alone.release()
	after.release()
	batch.release()

	// Frames of no slab (a local client's) in between end no run: the
	// run's share counts across them, and only its own entries are
	// copied.
	var mixed sendQueue
	local := []byte("local")
	mixed.addIn(sparse[0:10], unsafe.SliceData(sparse), len(sparse), nil, 1)
	mixed.add(local, nil, 1)
	mixed.addIn(sparse[10:20], unsafe.SliceData(sparse), len(sparse), nil, 1) // after local: an entry of its own
	mixed.addIn(dense[0:30], unsafe.SliceData(dense), len(dense), nil, 1)     // sparse's run ends
	mixed.add(local, nil, 1)
	mixed.addIn(dense[30:60], unsafe.SliceData(dense), len(dense), nil, 1)
	mixed.addIn(next[0:10], unsafe.SliceData(next), len(next), nil, 1) // dense's run ends: 60 of 100
	for i, want := range []bool{true, false, true, false, false, false, false} {
		if copied := mixed.refs[i] != nil; copied != want {
			t.Errorf("mixed entry %d: copied %v, want %v", i, copied, want)
		}
	}
	if string(mixed.frames[0]) != string(sparse[0:10]) || string(mixed.frames[2]) != string(sparse[10:20]) || string(mixed.frames[1]) != "local" {
		t.Error("the mixed queue's entries changed")
	}
	mixed.release()
}
