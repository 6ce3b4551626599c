package natslink

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// syncBuffer is a log destination safe for the link's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHeldUntilRelease: a link opened held sends nothing until Release,
// in either format; Close frees a publisher waiting on a held link, with
// ErrClosed.
func TestHeldUntilRelease(t *testing.T) {
	ns := startNATS(t)
	got := make(chan Event, 16)
	recv, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), Logger: slog.New(slog.DiscardHandler)},
		func(ev *Event) { got <- Event{Channel: ev.Channel, ID: ev.ID} })
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	recv.SetChannels([]string{"A"})
	node := uuid.New()
	bothFormats(t, func(t *testing.T, pack bool) {
		l, err := Open(Config{URL: ns.ClientURL(), Node: node, Pack: pack, Held: true, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		id := uuid.New()
		sent := make(chan error, 1)
		go func() {
			if pack {
				sent <- l.PublishFrame([]byte("A"), wire.AppendEvent(nil, &wire.Message{ID: id, Origin: node, Sender: node, Channel: "A", Event: "e", Data: []byte{0xc0}}))
			} else {
				sent <- l.Publish(&Event{Channel: "A", Event: "e", ID: id, Origin: node, Sender: node, Data: []byte{0xc0}}, uuid.Nil)
			}
		}()
		select {
		case err := <-sent:
			t.Fatalf("a held link took an event (%v) before Release", err)
		case ev := <-got:
			t.Fatalf("a held link sent %v before Release", ev.ID)
		case <-time.After(100 * time.Millisecond):
		}
		l.Release()
		if err := <-sent; err != nil {
			t.Fatalf("publishing after Release: %v", err)
		}
		select {
		case ev := <-got:
			if ev.ID != id {
				t.Errorf("delivered %v, sent %v", ev.ID, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the event published after Release never arrived")
		}
	})

	l, err := Open(Config{URL: ns.ClientURL(), Node: node, Held: true, Logger: slog.New(slog.DiscardHandler)}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- l.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node}, uuid.Nil)
	}()
	time.Sleep(20 * time.Millisecond) // most likely waiting by now; ErrClosed either way
	l.Close()
	if err := <-sent; !errors.Is(err, ErrClosed) {
		t.Errorf("Publish on a held link that closed: %v, want ErrClosed", err)
	}
}

// TestCloseWhileDisconnected: events that wait in the buffer while NATS
// is down are lost when the link closes before NATS is back: Close
// counts them dropped and says so, in either format, and the closed
// link shows nothing buffered (nats.go's figure for a closed
// connection is -1).
func TestCloseWhileDisconnected(t *testing.T) {
	bothFormats(t, func(t *testing.T, pack bool) {
		ns := startNATS(t)
		log := &syncBuffer{}
		node := uuid.New()
		l, err := Open(Config{URL: ns.ClientURL(), Node: node, Pack: pack, Buffer: 1 << 20,
			Logger: slog.New(slog.NewTextHandler(log, nil))}, func(*Event) {})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the link to connect", l.Connected)
		ns.Shutdown()
		ns.WaitForShutdown()
		waitFor(t, "the link to see NATS gone", func() bool { return !l.Connected() })
		const n = 100
		frame := wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: node, Sender: node, Channel: "A", Event: "e", Data: []byte{0xc0}})
		for range n {
			if pack {
				err = l.PublishFrame([]byte("A"), frame)
			} else {
				err = l.Publish(&Event{Channel: "A", Event: "e", ID: uuid.New(), Origin: node, Sender: node, Data: []byte{0xc0}}, uuid.Nil)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		if st := l.Stats(); st.Dropped != n || st.Buffered != 0 {
			t.Errorf("dropped %d, %d bytes buffered; want the %d events that waited in the buffer, and none left", st.Dropped, st.Buffered, n)
		}
		if want := "closes while disconnected"; !bytes.Contains([]byte(log.String()), []byte(want)) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	})
}
