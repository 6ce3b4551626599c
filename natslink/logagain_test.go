package natslink

import "testing"

// TestLogAgain: a count is logged at the 1st, 2nd, 4th, 8th... event,
// also when several come at once and step over the power of two.
func TestLogAgain(t *testing.T) {
	for _, c := range []struct {
		total, n uint64
		want     bool
	}{
		{1, 1, true}, {2, 1, true}, {3, 1, false}, {4, 1, true}, {5, 1, false},
		{178, 178, true}, // a pack's events, the first refused
		{200, 22, false}, {256, 56, true}, {300, 44, false}, {600, 300, true},
	} {
		if got := logAgain(c.total, c.n); got != c.want {
			t.Errorf("logAgain(%d, %d) = %v, want %v", c.total, c.n, got, c.want)
		}
	}
}
