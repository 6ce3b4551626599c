package multicast

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestFlowLeaveIgnoresLateStatus: once a receiver has left the cluster,
// a status of its that comes after (sent before it left: statuses and
// heartbeats travel in different streams) does not make it a receiver
// again, for the timeout or until it is heard again.
func TestFlowLeaveIgnoresLateStatus(t *testing.T) {
	f := newFlow()
	f.configure(FlowMin, time.Second)
	node := uuid.New()
	now := time.Unix(1000, 0)
	f.wrote(10)
	live := func() int { _, _, n := f.stats(); return n }

	f.report(node, StatusEntry{Position: 10, Window: 16}, now)
	if live() != 1 {
		t.Fatalf("%d live receivers after the first report, want 1", live())
	}
	f.leave(node, now)
	if live() != 0 {
		t.Fatalf("%d live receivers after the receiver left, want 0", live())
	}
	f.report(node, StatusEntry{Position: 10, Window: 16}, now.Add(time.Millisecond))
	if live() != 0 {
		t.Errorf("a status that came after the receiver left made it live again")
	}
	if lim, by, _ := f.limit(now.Add(time.Millisecond)); by != nil || lim < 1<<62 {
		t.Errorf("the writer is limited to %d by %v after the receiver left", lim, by)
	}
	if _, excluded, _ := f.stats(); excluded != 0 {
		t.Errorf("the receiver that left is counted left out (%d)", excluded)
	}

	// Heard again: its next status counts.
	f.back(node)
	f.report(node, StatusEntry{Position: 10, Window: 16}, now.Add(2*time.Millisecond))
	if live() != 1 {
		t.Errorf("%d live receivers once it is back, want 1", live())
	}

	// Left and never heard again: forgotten after the timeout.
	f.leave(node, now.Add(3*time.Millisecond))
	f.age(now.Add(3 * time.Second))
	f.report(node, StatusEntry{Position: 10, Window: 16}, now.Add(3*time.Second))
	if live() != 1 {
		t.Errorf("a status long after it left: %d live receivers, want 1", live())
	}
}
