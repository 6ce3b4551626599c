package channel_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// rawV4 is a client of protocol version 4 on a raw socket. A goroutine
// reads its frames: events' names go to events, Applied frames' seqs to
// applied; it ends when the connection does (closed).
type rawV4 struct {
	nc      net.Conn
	id      uuid.UUID
	w       wire.Welcome
	events  chan string
	applied chan uint64
	closed  chan error
}

func dialV4(t *testing.T, ch *channel.Channel, patterns []string) *rawV4 {
	t.Helper()
	nc, err := net.Dial("unix", ch.Path())
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawV4{nc: nc, id: uuid.New(), events: make(chan string, 1<<16), applied: make(chan uint64, 1<<14), closed: make(chan error, 1)}
	t.Cleanup(func() { nc.Close(); <-rc.closed })
	in := &wire.Interest{Patterns: patterns}
	if _, err := nc.Write(wire.AppendHello(nil, &wire.Hello{Version: wire.InterestVersion, ClientID: rc.id, Name: "raw4", Interest: in})); err != nil {
		t.Fatal(err)
	}
	fr := wire.NewFrameReader(bufio.NewReader(nc), wire.MaxFrameLimit)
	frame, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if rc.w, err = wire.DecodeWelcome(frame[wire.HeaderLen:]); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			frame, err := fr.ReadFrame()
			if err != nil {
				rc.closed <- err
				return
			}
			body := frame[wire.HeaderLen:]
			switch typ, _ := wire.TypeOf(body); typ {
			case wire.FrameEvent:
				h, _ := wire.ParseEvent(body)
				rc.events <- string(h.Event)
			case wire.FrameApplied:
				seq, _ := wire.DecodeApplied(body)
				rc.applied <- seq
			case wire.FrameError:
				e, _ := wire.DecodeError(body)
				rc.closed <- fmt.Errorf("error frame: %v %s", e.Code, e.Message)
				return
			}
		}
	}()
	return rc
}

func (rc *rawV4) declare(t *testing.T, seq uint64, patterns ...string) {
	t.Helper()
	if _, err := rc.nc.Write(wire.AppendInterest(nil, &wire.Interest{Seq: seq, Patterns: patterns})); err != nil {
		t.Fatal(err)
	}
}

// awaitApplied waits for the Applied frame numbered seq, skipping
// earlier ones.
func (rc *rawV4) awaitApplied(t *testing.T, seq uint64) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case got := <-rc.applied:
			if got == seq {
				return
			}
			if got > seq {
				t.Fatalf("applied %d, want %d", got, seq)
			}
		case err := <-rc.closed:
			rc.closed <- err
			t.Fatalf("connection ended waiting for applied %d: %v", seq, err)
		case <-timeout:
			t.Fatalf("no applied %d", seq)
		}
	}
}

// TestInterestFloodBounded: thousands of Interest frames, each with
// other patterns, sent while events of thousands of distinct names flow,
// keep the connection up, leave the client with the last declaration's
// patterns only, and its cache of decisions within its bound.
func TestInterestFloodBounded(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New()})
	rc := dialV4(t, ch, []string{"start"})
	pub := dial(t, ch, "pub")
	var c *channel.Conn
	routertest.WaitFor(t, "the raw client", func() bool { c = ch.Client(rc.id); return c != nil })

	const declarations, names = 3000, 3 * channel.MaxCachedNames
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range names {
			if err := pub.Emit(fmt.Sprintf("n%d", i), nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for seq := uint64(1); seq <= declarations; seq++ {
		rc.declare(t, seq, fmt.Sprintf("n%d", seq), fmt.Sprintf("m%d.*", seq%17), "x|y")
	}
	rc.awaitApplied(t, declarations)
	if got := c.Interest(); len(got) != 3 || got[0] != fmt.Sprintf("n%d", declarations) {
		t.Errorf("interest after the flood: %q, want the last declaration's", got)
	}
	<-done

	// A declaration that passes every name: the cache holds at most its
	// bound, however many names the events have.
	rc.declare(t, declarations+1, "n[0-9]+", "end")
	rc.awaitApplied(t, declarations+1)
	for i := range names {
		if err := pub.Emit(fmt.Sprintf("n%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Emit("end", nil); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for got := ""; got != "end"; {
		select {
		case got = <-rc.events:
		case err := <-rc.closed:
			rc.closed <- err
			t.Fatalf("connection ended: %v", err)
		case <-timeout:
			t.Fatal("no end event")
		}
	}
	if n := c.CachedNames(); n == 0 || n > channel.MaxCachedNames+channel.MaxCachedNames/8+1 {
		t.Errorf("the cache holds %d names, want 1 to about %d", n, channel.MaxCachedNames)
	}
	if ch.Client(rc.id) != c {
		t.Error("the client was dropped")
	}
}
