package router_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// helloV2 does the handshake as a client of protocol version 2, which
// the server pings.
func (rc *rawConn) helloV2() {
	rc.t.Helper()
	rc.helloV(wire.PingVersion)
}

// nextType reads the next frame and returns its type.
func (rc *rawConn) nextType() wire.FrameType {
	rc.t.Helper()
	frame, err := rc.fr.ReadFrame()
	if err != nil {
		rc.t.Fatalf("reading: %v", err)
	}
	typ, err := wire.TypeOf(frame[wire.HeaderLen:])
	if err != nil {
		rc.t.Fatal(err)
	}
	return typ
}

// TestServerPingsSilentClient: a client of version 2 that sends nothing
// is pinged after pinginterval, and dropped with error code 8 (ping
// timeout) after pingtimeout, with a logged reason and a count in the
// stats. A client that answers the pings stays, and so do a version 1
// client and a JSON client, which know no pings and are never pinged.
func TestServerPingsSilentClient(t *testing.T) {
	// A timeout far above the interval, so that a machine under load
	// does not make the answering client look dead.
	ts := routertest.NewServer(t, `"pinginterval": "50ms", "pingtimeout": "1s", "channels": {"A": {}}`)
	old := dialRaw(t, ts, "A")
	old.hello()                                       // version 1
	listenOnly, err := net.Dial("unix", ts.Path("A")) // silent: a JSON client after the grace
	if err != nil {
		t.Fatal(err)
	}
	defer listenOnly.Close()

	// The answering client answers every ping, and tells of the pongs it
	// gets, until the test closes it.
	answering := dialRaw(t, ts, "A")
	answering.helloV2()
	pings, pongs := make(chan struct{}, 100), make(chan struct{}, 100)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer answering.nc.Close()
	wg.Go(func() {
		for {
			frame, err := answering.fr.ReadFrame()
			if err != nil {
				return
			}
			switch typ, _ := wire.TypeOf(frame[wire.HeaderLen:]); typ {
			case wire.FramePing:
				answering.nc.Write(wire.AppendPong(nil))
				pings <- struct{}{}
			case wire.FramePong:
				pongs <- struct{}{}
			}
		}
	})

	silent := dialRaw(t, ts, "A")
	start := time.Now()
	silent.helloV2()
	if typ := silent.nextType(); typ != wire.FramePing {
		t.Fatalf("the silent client got a %v frame, want a ping", typ)
	}
	e := silent.closedWith()
	if e.Code != bus.CodePingTimeout || !strings.Contains(e.Message, "pingtimeout 1s") {
		t.Errorf("the silent client was closed with %v %q, want code %d", e.Code, e.Message, bus.CodePingTimeout)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("dropped after %v, before pingtimeout", d)
	}
	if !strings.Contains(ts.Logs.String(), "not even the answer to a ping") {
		t.Error("the server did not log why it dropped the client")
	}
	routertest.WaitFor(t, "the answering client to be pinged", func() bool { return len(pings) >= 3 })
	routertest.WaitFor(t, "the JSON client", func() bool { return stats(t, ts, "A").Clients == 3 })
	time.Sleep(1200 * time.Millisecond) // past pingtimeout: the others stay
	if st := stats(t, ts, "A"); st.PingTimeouts != 1 || st.Clients != 3 {
		t.Errorf("stats: %d ping timeouts, %d clients; want 1 and 3 (version 1, JSON, answering)", st.PingTimeouts, st.Clients)
	}

	// A ping from the client is answered with a pong.
	if _, err := answering.nc.Write(wire.AppendPing(nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pongs:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not answer a ping")
	}

	// The version 1 client was never pinged: the first frame it gets is
	// an event.
	pub := ts.Dial(t, "A", bus.Reconnect(false))
	if err := pub.Emit("after", nil); err != nil {
		t.Fatal(err)
	}
	if typ := old.nextType(); typ != wire.FrameEvent {
		t.Errorf("the version 1 client got a %v frame, want the event", typ)
	}
}

// TestServerPingOff: with pinginterval "0s" a silent client of version 2
// is neither pinged nor dropped; a reload turns the check on.
func TestServerPingOff(t *testing.T) {
	ts := routertest.NewServer(t, `"pinginterval": "0s", "channels": {"A": {}}`)
	silent := dialRaw(t, ts, "A")
	silent.helloV2()
	silent.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if frame, err := silent.fr.ReadFrame(); err == nil {
		t.Fatalf("the server sent % x with pinging off", frame)
	}
	if _, err := ts.Reload(ts.ParseConfig(t, `"pinginterval": "20ms", "pingtimeout": "100ms", "channels": {"A": {}}`)); err != nil {
		t.Fatal(err)
	}
	silent.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if e := silent.closedWith(); e.Code != bus.CodePingTimeout {
		t.Errorf("closed with %v, want a ping timeout", e.Code)
	}
}

// TestShowConfigPing: showconfig shows the liveness keys.
func TestShowConfigPing(t *testing.T) {
	ts := routertest.NewServer(t, `"pingtimeout": "45s", "channels": {"A": {}}`)
	ctl := ts.Dial(t, router.ControlChannel)
	cfg := routertest.Control(t, ctl, "showconfig", nil)["config"].(map[string]any)
	if cfg["pinginterval"] != "10s" || cfg["pingtimeout"] != "45s" {
		t.Errorf("showconfig: pinginterval %v, pingtimeout %v; want 10s and 45s", cfg["pinginterval"], cfg["pingtimeout"])
	}
}
