package bus

import "testing"

// TestGoid checks that goid reads the goroutine id off the stack trace:
// not 0, the same on one goroutine, different on another. On relies on
// it to tell the dispatcher, from which it must not wait.
func TestGoid(t *testing.T) {
	a, b := goid(), goid()
	if a == 0 || a != b {
		t.Fatalf("goid gave %d then %d on one goroutine", a, b)
	}
	other := make(chan uint64)
	go func() { other <- goid() }()
	if o := <-other; o == 0 || o == a {
		t.Errorf("goid gave %d on another goroutine, %d on this one", o, a)
	}
}
