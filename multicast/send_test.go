package multicast_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"go.uber.org/goleak"
)

// TestQueuedMessagesArePacked holds the sender's writes while 100 small
// messages queue up, so that the writer takes them at once: they must go
// out packed, 45 records of 30 bytes to a 1400-byte datagram, and arrive
// complete and in order.
func TestQueuedMessagesArePacked(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	cfgA := config(port)
	cfgA.Heartbeat = time.Hour // the first heartbeat only
	release := multicast.HoldWrites(&cfgA)
	defer release()
	a := openLink(t, cfgA)
	b := openLink(t, config(port))
	var want [][]byte
	for i := range 100 {
		msg := fmt.Appendf(nil, "m%03d", i)
		want = append(want, msg)
		if err := a.Send(uuid.New(), msg); err != nil {
			t.Fatal(err)
		}
	}
	release()
	waitFor(t, "100 messages", func() bool { return len(b.in.all()) == 100 })
	for i, got := range b.in.all() {
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("message %d is %q, want %q", i, got, want[i])
		}
	}
	// a counts a datagram once its write returns, which can be after b
	// has read it: the heartbeat's too, so a's count of datagrams is
	// waited for as well (under load it once lagged b's heartbeat).
	// The first heartbeat may be queued after the messages, when the
	// housekeeping goroutine starts late.
	waitFor(t, "a to count its 100 messages and its heartbeat sent", func() bool {
		return a.Stats().MessagesSent == 100 && b.Stats().Heartbeats >= 1 && a.Stats().DatagramsSent >= 4
	})
	// The heartbeat, then 45 + 45 + 10 records; or, if the writer took
	// some messages with the heartbeat before it was held, one datagram
	// more.
	if s := a.Stats(); s.DatagramsSent < 4 || s.DatagramsSent > 5 || s.MessagesSent != 100 {
		t.Errorf("a sent %d datagrams for %d messages, want 4 or 5 for 100", s.DatagramsSent, s.MessagesSent)
	}
	if s := b.Stats(); s.Lost != 0 || s.Dropped() != 0 {
		t.Errorf("b lost %d datagrams and dropped %d", s.Lost, s.Dropped())
	}
}

// TestManyMessagesArriveInOrder sends small messages with a large one
// now and then (fragments and packed records in one stream), paced so
// that the receiver keeps up, and checks that every one arrives once, in
// order.
func TestManyMessagesArriveInOrder(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	a := openLink(t, config(port))
	b := openLink(t, config(port))
	const n = 20000
	msg := func(i int) []byte {
		size := 100 + i%50
		if i%97 == 0 {
			size = 5000 + i%1000 // 4 fragments, the last shared with what follows
		}
		m := make([]byte, size)
		copy(m, fmt.Appendf(nil, "%06d", i))
		return m
	}
	for i := range n {
		for i-b.in.count() > 500 {
			time.Sleep(100 * time.Microsecond)
		}
		if err := a.Send(uuid.New(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, fmt.Sprintf("%d messages", n), func() bool { return b.in.count() == n })
	for i, got := range b.in.all() {
		if !bytes.Equal(got, msg(i)) {
			t.Fatalf("message %d: got %q..., want %q...", i, got[:6], msg(i)[:6])
		}
	}
	sa, sb := a.Stats(), b.Stats()
	if sb.Lost != 0 || sb.Dropped() != 0 || sb.Duplicates != 0 {
		t.Errorf("b lost %d datagrams, dropped %d, saw %d duplicates", sb.Lost, sb.Dropped(), sb.Duplicates)
	}
	if sa.MessagesSent != n || sa.QueueFull != 0 || sa.SendErrors != 0 {
		t.Errorf("a: %d messages sent, %d dropped as the queue was full, %d send errors", sa.MessagesSent, sa.QueueFull, sa.SendErrors)
	}
	t.Logf("%d messages in %d datagrams", sa.MessagesSent, sa.DatagramsSent)
}

// TestSendQueueIsBounded sends through a socket that cannot keep up: the
// queue must stay within its bound, Send must refuse what does not fit
// with ErrQueueFull and count it, and Close must return, with every
// goroutine ended, while the queue is full.
func TestSendQueueIsBounded(t *testing.T) {
	mcasttest.Need(t)
	before := goleak.IgnoreCurrent()
	cfg := config(mcasttest.Port())
	cfg.SendQueue = 64 << 10
	cfg.SendWait = time.Millisecond
	multicast.SlowWrites(&cfg, 20*time.Millisecond) // longer than Close waits for the queue
	a := openLink(t, cfg)
	const n, size = 500, 1000
	msg := make([]byte, size)
	var full int
	for range n {
		err := a.Send(uuid.New(), msg)
		switch {
		case errors.Is(err, multicast.ErrQueueFull):
			full++
		case err != nil:
			t.Fatal(err)
		}
	}
	s := a.Stats()
	if full == 0 || uint64(full) != s.QueueFull {
		t.Errorf("Send refused %d messages, Stats.QueueFull = %d; want the same, more than 0", full, s.QueueFull)
	}
	if bound := cfg.SendQueue + size + 64; s.QueuePeak > bound || s.QueueBytes > bound {
		t.Errorf("the queue held %d bytes, at most %d; its bound is %d (plus a message)", s.QueueBytes, s.QueuePeak, cfg.SendQueue)
	}
	if s.QueueBytes == 0 {
		t.Fatal("the queue is empty: the test did not fill it")
	}
	start := time.Now()
	a.Close()
	t.Logf("Close took %v", time.Since(start))
	goleak.VerifyNone(t, before)
	s = a.Stats()
	if s.Unsent == 0 {
		t.Errorf("no message was left unsent at Close: %+v", s)
	}
	if got := s.MessagesSent + s.Unsent + s.QueueFull; got != n {
		t.Errorf("%d sent + %d unsent + %d refused is not the %d sent", s.MessagesSent, s.Unsent, s.QueueFull, n)
	}
	if err := a.Send(uuid.New(), msg); !errors.Is(err, multicast.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
}

// TestHeartbeatsDoNotPileUp holds a link's writes for many heartbeat
// intervals: at most one heartbeat waits in the queue beside the one the
// writer holds.
func TestHeartbeatsDoNotPileUp(t *testing.T) {
	mcasttest.Need(t)
	cfg := config(mcasttest.Port())
	cfg.Heartbeat = time.Millisecond
	release := multicast.HoldWrites(&cfg)
	defer release()
	a := openLink(t, cfg)
	time.Sleep(50 * time.Millisecond) // 50 heartbeat intervals
	held := a.Stats().QueueBytes
	release()
	waitFor(t, "the writer to catch up", func() bool { return a.Stats().DatagramsSent >= 2 })
	// Each heartbeat is charged its bytes and 64 more: two of them
	// stay well under 400 bytes.
	if held > 400 {
		t.Errorf("the queue held %d bytes of heartbeats", held)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*multicast.Config)
		want string
	}{
		{"negative send queue", func(c *multicast.Config) { c.SendQueue = -1 }, "send queue bound -1 is negative"},
		{"payload too small", func(c *multicast.Config) { c.Payload = 100 }, "payload 100 is out of range 576..65467"},
		{"negative port", func(c *multicast.Config) { c.Port = -1 }, "port -1 is out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(mcasttest.Port())
			tc.set(&cfg)
			l, err := multicast.Open(cfg, func(uuid.UUID, []byte) {})
			if err == nil {
				l.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
