package router

import (
	"testing"
	"time"
)

// TestDedupWindowStretch follows the dedup's window through an episode
// of NATS behind multicast: dedupWindow before; dedupWindow plus the
// time since NATS fell behind (its earliest cause) while it is, and for
// dedupWindow after it caught up; then dedupWindow again.
func TestDedupWindowStretch(t *testing.T) {
	w := &dedupWatch{}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		now, since time.Duration // since < 0: NATS is not behind
		want       time.Duration
	}{
		{0, -1, dedupWindow},
		{time.Second, 0, dedupWindow + time.Second},
		// A later cause does not move the start; an earlier one does.
		{20 * time.Second, 15 * time.Second, dedupWindow + 20*time.Second},
		{30 * time.Second, -2 * time.Second, dedupWindow + 32*time.Second},
		// Caught up: the window holds, growing, for dedupWindow.
		{40 * time.Second, -1, dedupWindow + 42*time.Second},
		{40*time.Second + dedupWindow, -1, 2*dedupWindow + 42*time.Second},
		// Then it is back to dedupWindow, and a new episode starts anew.
		{41*time.Second + dedupWindow, -1, dedupWindow},
		{60 * time.Second, 59 * time.Second, dedupWindow + time.Second},
	}
	for i, s := range steps {
		var since time.Time
		if s.since != -1 {
			since = at(s.since)
		}
		if got := w.window(at(s.now), since); got != s.want {
			t.Errorf("step %d (at %v, behind since %v): window %v, want %v", i, s.now, s.since, got, s.want)
		}
	}
}
