package bus

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestQueueBound checks that the receive queue bounds every event not
// yet handed to listeners, those the dispatcher has taken included, and
// keeps their order.
func TestQueueBound(t *testing.T) {
	const limit = 4
	q := newQueue(limit)
	msgs := make([]Message, 7)
	for i := range msgs {
		msgs[i].Event = string(rune('a' + i))
	}
	var stalled atomic.Bool
	pushed := make(chan bool, 1)
	go func() { pushed <- q.pushBatch(msgs, &stalled) }()
	held := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.items) + q.inHand
	}
	waitStalled := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !stalled.Load() || held() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("the read loop did not stall with %d events held (stalled %v, held %d)", want, stalled.Load(), held())
			}
			time.Sleep(time.Millisecond)
		}
	}
	var got []string
	take := func(spare []Message) []Message {
		t.Helper()
		batch, ok := q.take(spare)
		if !ok || len(batch) > limit/2 {
			t.Fatalf("take: %d events, ok %v; want at most %d", len(batch), ok, limit/2)
		}
		for _, m := range batch {
			got = append(got, m.Event)
		}
		return batch
	}
	waitStalled(limit)
	b := take(nil) // the dispatcher holds 2 and 2 wait: still full
	waitStalled(limit)
	clear(b)
	b = take(b) // done with the first 2: room for 2 more
	waitStalled(limit)
	clear(b)
	b = take(b)
	clear(b)
	b = take(b)
	if ok := <-pushed; !ok {
		t.Fatal("pushBatch reported a closed queue")
	}
	if stalled.Load() {
		t.Error("stalled is still set after the push")
	}
	q.close()
	clear(b)
	if _, ok := q.take(b); ok {
		t.Error("take after close and drain reported events")
	}
	if want := "abcdefg"; joined(got) != want {
		t.Errorf("events taken in order %q, want %q", joined(got), want)
	}
}

func joined(s []string) (out string) {
	for _, x := range s {
		out += x
	}
	return out
}
