package channel_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestDroppedClientsEventsHandled: the events that a client sent before
// it was dropped as a slow consumer, still unread in its socket then,
// are handled as any other. The server closes only its writing half
// after the error frame, and reads on up to the client's own close;
// before, it closed the socket, and the client took events that nobody
// read for delivered. It reads on past the grace of a second, too, for
// as long as the Handler holds the read loop ("held").
func TestDroppedClientsEventsHandled(t *testing.T) {
	t.Run("prompt", func(t *testing.T) { droppedClientsEvents(t, 0) })
	t.Run("held", func(t *testing.T) { droppedClientsEvents(t, 1500*time.Millisecond) })
}

// droppedClientsEvents is TestDroppedClientsEventsHandled with the
// Handler holding the dropped client's first event for held after the
// client closed.
func droppedClientsEvents(t *testing.T, held time.Duration) {
	const events = 300
	h := newHoldingChannel(t, channel.Config{MaxPending: 64 << 10, Overflow: channel.OverflowDrop})
	var recv ints
	recv.listen(t, dial(t, h.ch, "receiver"))

	// The client to drop speaks version 1, which knows no pings, and
	// reads nothing until it is dropped.
	x := rawHelloTo(t, h.ch, wire.Hello{Version: 1, Name: "dropped"})
	first, _ := x.event(h.node, "A", "first", []byte{0xc0})
	batch := first
	for i := range events {
		f, _ := x.event(h.node, "A", "n", []byte{0xcd, byte(i >> 8), byte(i)}) // msgpack uint16
		batch = append(batch, f...)
	}
	if _, err := x.nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	h.awaitHold(t)
	h.floodUntilDropped(t)

	// The dropped client reads up to its error frame and the end of the
	// stream, and closes, as the Go client does.
	var code wire.ErrorCode
	var readErr error
	for readErr == nil {
		ty, body, err := x.next(10 * time.Second)
		switch {
		case errors.Is(err, io.EOF):
			readErr = io.EOF
		case err != nil:
			readErr = err
		case ty == wire.FrameError:
			if e, err := wire.DecodeError(body); err == nil {
				code = e.Code
			}
		}
	}
	x.nc.Close()
	time.Sleep(held)
	h.letGo()

	recv.checkAll(t, events)
	if code != wire.CodeSlowConsumer || readErr != io.EOF {
		t.Errorf("the dropped client read error code %v, then %v; want %v, then EOF", code, readErr, wire.CodeSlowConsumer)
	}
	routertest.WaitFor(t, "the dropped client to be gone", func() bool { return h.ch.Client(x.id) == nil })
}

// TestGivenUpReconnectionEnds: a connection that waits for the client's
// earlier one (its Hello names it in own) ends as soon as the client
// closes it: a Go client whose handshake times out tries again, and
// the attempts it gave up must not wait on, each with a queue, until
// the earlier connection is read to its end. Before, it waited.
func TestGivenUpReconnectionEnds(t *testing.T) {
	h := newHoldingChannel(t, channel.Config{})
	x := rawHelloTo(t, h.ch, wire.Hello{Name: "dropped"})
	first, _ := x.event(h.node, "A", "first", []byte{0xc0})
	if _, err := x.nc.Write(first); err != nil {
		t.Fatal(err)
	}
	h.awaitHold(t)

	again := rawDial(t, h.ch)
	if _, err := again.Write(wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, ClientID: uuid.New(), Name: "again", Own: [][16]byte{x.id}})); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the new connection to wait for the earlier one", func() bool {
		return routertest.StacksShow("", "(*Conn).awaitEarlier")
	})
	again.Close()
	routertest.WaitFor(t, "the given-up connection to end", func() bool {
		return h.ch.Stats().Undecided == 0 && !routertest.StacksShow("", "(*Conn).awaitEarlier")
	})
}
