package gate

import (
	"testing"
	"time"
)

// TestGate: an open gate lets through at once; a shut one holds Wait
// until Open, or until stop closes; Open is idempotent.
func TestGate(t *testing.T) {
	var open Gate
	open.Open() // nothing to do
	if !open.Wait(nil) {
		t.Fatal("the zero gate held Wait")
	}

	var g Gate
	g.Shut()
	if g.Opened() {
		t.Fatal("a shut gate reports itself open")
	}
	done := make(chan bool, 1)
	go func() { done <- g.Wait(nil) }()
	select {
	case <-done:
		t.Fatal("a shut gate let Wait through")
	case <-time.After(50 * time.Millisecond):
	}
	g.Open()
	g.Open()
	if !<-done {
		t.Fatal("Wait on a gate opened reported a stop")
	}
	if !g.Wait(nil) || !g.Opened() {
		t.Fatal("an opened gate held Wait, or reports itself shut")
	}

	var h Gate
	h.Shut()
	stop := make(chan struct{})
	go func() { done <- h.Wait(stop) }()
	close(stop)
	if <-done {
		t.Fatal("Wait on a shut gate reported it open after stop")
	}
}
