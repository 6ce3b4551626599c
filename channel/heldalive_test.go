package channel_test

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// The liveness check of both sides in the tests below: a hold of
// heldFor lasts three client ping timeouts.
const (
	heldPingInterval = 200 * time.Millisecond
	heldPingTimeout  = time.Second
	heldFor          = 3 * time.Second
)

// heldPublisher dials ch with the client's liveness check of interval
// and timeout, and counts the times it loses its connection.
func heldPublisher(t *testing.T, ch *channel.Channel, interval, timeout time.Duration) (*bus.Client, *atomic.Int64) {
	t.Helper()
	var disconnects atomic.Int64
	c := dialWith(t, ch, "held", bus.Ping(interval, timeout), bus.OnDisconnect(func(error) { disconnects.Add(1) }))
	return c, &disconnects
}

// checkKept fails unless the publisher kept its one connection through
// the hold, on both sides.
func checkKept(t *testing.T, ch *channel.Channel, pub *bus.Client, disconnects *atomic.Int64, conn uint64) {
	t.Helper()
	if n := disconnects.Load(); n != 0 {
		t.Errorf("the publisher lost its connection %d times while the server held it", n)
	}
	if n := ch.Stats().PingTimeouts; n != 0 {
		t.Errorf("the server dropped %d clients for ping timeout", n)
	}
	if ci := ch.Client(pub.ID()); ci == nil || ci.Info().Conn != conn {
		t.Errorf("the publisher is not on its first connection (%d) any more", conn)
	}
}

// TestHeldByHandlerKeptAlive: a publisher whose reader waits in the
// Handler, as a link's flow control makes it wait, for three ping
// timeouts, keeps its connection. The server, which reads nothing from
// it meanwhile, does not drop it, and pings it, so that the client,
// which hears nothing else, does not give the server up. It pings it
// with its own pinging off too: the client does not know that setting.
func TestHeldByHandlerKeptAlive(t *testing.T) {
	t.Run("pinging", func(t *testing.T) {
		heldByHandler(t, heldPingInterval, heldPingInterval, heldPingTimeout, heldFor)
	})
	t.Run("off", func(t *testing.T) {
		// Held clients are pinged every 2 s by default; as often as
		// the client pings here.
		t.Cleanup(channel.SetHeldPingEvery(heldPingInterval))
		heldByHandler(t, 0, heldPingInterval, heldPingTimeout, heldFor)
	})
}

// heldByHandler is TestHeldByHandlerKeptAlive with the server's ping
// interval serverPing, the client's check of interval and timeout, and
// a hold of held.
func heldByHandler(t *testing.T, serverPing, interval, timeout, held time.Duration) {
	release := make(chan struct{})
	var handled atomic.Int64
	ch := listen(t, channel.Config{Name: "A", PingInterval: serverPing, PingTimeout: 5 * serverPing,
		Handler: func(from *channel.Conn, ev *channel.Event) {
			if handled.Add(1) == 1 {
				<-release
			}
		}})
	pub, disconnects := heldPublisher(t, ch, interval, timeout)
	if err := pub.Emit("first", 1); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the Handler to hold the first event", func() bool { return handled.Load() == 1 })
	conn := ch.Client(pub.ID()).Info().Conn
	time.Sleep(held)
	close(release)
	if err := pub.Emit("second", 2); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the second event", func() bool { return handled.Load() == 2 })
	checkKept(t, ch, pub, disconnects, conn)
}

// TestHeldByFlowControlKeptAlive: a publisher held back for three ping
// timeouts by a receiver past its high-water mark keeps its connection,
// and the receiver then gets every event, in order.
func TestHeldByFlowControlKeptAlive(t *testing.T) {
	const maxPending = 256 << 10
	ch := listen(t, channel.Config{Name: "A", PingInterval: heldPingInterval, PingTimeout: heldPingTimeout,
		MaxPending: maxPending, StallTimeout: time.Minute})
	// A client of protocol version 1 knows no pings: the server leaves
	// its silence alone while it reads nothing.
	slow := rawHelloTo(t, ch, wire.Hello{Version: 1, Name: "slow"})
	pub, disconnects := heldPublisher(t, ch, heldPingInterval, heldPingTimeout)
	conn := ch.Client(pub.ID()).Info().Conn

	const events = 20000
	data := make([]byte, 100)
	emitted := make(chan error, 1)
	go func() {
		for i := range events {
			binary.BigEndian.PutUint32(data, uint32(i))
			if err := pub.Emit("n", data); err != nil {
				emitted <- err
				return
			}
		}
		emitted <- pub.Flush(context.Background())
	}()
	routertest.WaitFor(t, "the receiver's queue past its high-water mark", func() bool {
		return ch.Client(slow.id).Info().Pending > maxPending/2
	})
	time.Sleep(heldFor)
	select {
	case err := <-emitted:
		t.Fatalf("the publisher's stream ended during the hold: %v", err)
	default:
	}

	for i := range events {
		ty, body, err := slow.next(10 * time.Second)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ty != wire.FrameEvent {
			t.Fatalf("event %d: a %v frame", i, ty)
		}
		m, err := wire.DecodeEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := wire.DecodeData(m.Data, &got); err != nil {
			t.Fatal(err)
		}
		if n := binary.BigEndian.Uint32(got); n != uint32(i) {
			t.Fatalf("event %d is number %d", i, n)
		}
	}
	if err := <-emitted; err != nil {
		t.Fatal(err)
	}
	// The hold is what the test is about: without it the client's
	// writes go on, and its own check takes them for signs of life.
	if us := ch.Stats().StalledMicros; us < uint64(2*heldPingTimeout/time.Microsecond) {
		t.Fatalf("the publisher was held %v in all, not past its ping timeout (%v): the test proves nothing",
			time.Duration(us)*time.Microsecond, heldPingTimeout)
	}
	checkKept(t, ch, pub, disconnects, conn)
}
