package router_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// helloV4 does the handshake as a client of protocol version 4 that
// declares in (nil: nothing) in its Hello.
func (rc *rawConn) helloV4(in *wire.Interest) {
	rc.t.Helper()
	rc.write(wire.AppendHello(nil, &wire.Hello{Version: wire.InterestVersion, ClientID: rc.id, Name: "raw4", Interest: in}))
	frame, err := rc.fr.ReadFrame()
	if err != nil {
		rc.t.Fatal(err)
	}
	if rc.w, err = wire.DecodeWelcome(frame[wire.HeaderLen:]); err != nil {
		rc.t.Fatal(err)
	}
	if rc.w.Version != wire.InterestVersion {
		rc.t.Fatalf("welcome of version %d, want %d", rc.w.Version, wire.InterestVersion)
	}
}

// declare sends an Interest frame numbered seq: patterns, or All when
// patterns is nil.
func (rc *rawConn) declare(seq uint64, patterns []string) {
	rc.t.Helper()
	rc.write(wire.AppendInterest(nil, &wire.Interest{Seq: seq, All: patterns == nil, Patterns: patterns}))
}

// rawFrame is one frame a raw client read: an event's header, or the seq
// of an Applied frame.
type rawFrame struct {
	typ     wire.FrameType
	event   wire.EventHeader
	applied uint64
}

// next reads the next event or Applied frame, skipping pings.
func (rc *rawConn) next() rawFrame {
	rc.t.Helper()
	for {
		frame, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("reading: %v", err)
		}
		body := frame[wire.HeaderLen:]
		typ, err := wire.TypeOf(body)
		if err != nil {
			rc.t.Fatal(err)
		}
		switch typ {
		case wire.FramePing:
			rc.write(wire.AppendPong(nil))
			continue
		case wire.FrameEvent:
			h, err := wire.ParseEvent(slices.Clone(body))
			if err != nil {
				rc.t.Fatal(err)
			}
			return rawFrame{typ: typ, event: h}
		case wire.FrameApplied:
			seq, err := wire.DecodeApplied(body)
			if err != nil {
				rc.t.Fatal(err)
			}
			return rawFrame{typ: typ, applied: seq}
		case wire.FrameError:
			e, _ := wire.DecodeError(body)
			rc.t.Fatalf("error frame from the server: %v %s", e.Code, e.Message)
		default:
			rc.t.Fatalf("unexpected %v frame", typ)
		}
	}
}

// eventsUntil reads events up to and including the one named last, and
// returns their names.
func (rc *rawConn) eventsUntil(last string) []string {
	rc.t.Helper()
	var got []string
	for {
		f := rc.next()
		if f.typ != wire.FrameEvent {
			rc.t.Fatalf("an Applied frame (%d) among events", f.applied)
		}
		got = append(got, string(f.event.Event))
		if string(f.event.Event) == last {
			return got
		}
	}
}

// awaitApplied reads up to the Applied frame numbered seq, whatever
// events come before it.
func (rc *rawConn) awaitApplied(seq uint64) {
	rc.t.Helper()
	for {
		if f := rc.next(); f.typ == wire.FrameApplied {
			if f.applied != seq {
				rc.t.Fatalf("applied %d, want %d", f.applied, seq)
			}
			return
		}
	}
}

func emitNames(t testing.TB, c *bus.Client, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := c.Emit(n, nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func channelStats(t testing.TB, ts *routertest.Server, name string) router.ChannelInfo {
	t.Helper()
	for _, ci := range ts.Channels() {
		if ci.Name == name {
			return ci
		}
	}
	t.Fatalf("no channel %s", name)
	return router.ChannelInfo{}
}

// TestInterestFilters: a client of version 4 gets only the events whose
// names match what it declared, in its Hello and then in Interest frames;
// an event emitted after the Applied frame reaches it under the new
// declaration; a client that declared nothing gets everything; the
// events skipped are counted per channel.
func TestInterestFilters(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	pub := ts.Dial(t, "A")
	all := ts.Dial(t, "A")
	heard := routertest.Record(t, all, ".*")

	rc := dialRaw(t, ts, "A")
	rc.helloV4(&wire.Interest{Patterns: []string{"keep.*", "x|y"}})
	routertest.WaitFor(t, "the raw client to be listed", func() bool {
		cs, _ := ts.Clients("A")
		return len(cs) == 3
	})

	emitNames(t, pub, "drop1", "keep1", "xx", "x", "drop2", "keep2", "y", "keepdone")
	if got, want := rc.eventsUntil("keepdone"), []string{"keep1", "x", "keep2", "y", "keepdone"}; !slices.Equal(got, want) {
		t.Errorf("filtered client got %q, want %q", got, want)
	}
	routertest.WaitFor(t, "the undeclared client to hear all", func() bool { return len(heard.Events()) == 8 })
	if got := channelStats(t, ts, "A").Stats.Filtered; got != 3 {
		t.Errorf("filtered = %d, want 3 (drop1, xx, drop2 skipped for one client)", got)
	}

	// Narrow to drop.* and widen later: from the Applied on, the new
	// declaration is what filters.
	rc.declare(1, []string{"drop.*"})
	rc.awaitApplied(1)
	emitNames(t, pub, "keep3", "drop3")
	if f := rc.next(); string(f.event.Event) != "drop3" {
		t.Errorf("after Applied 1 got %q, want drop3 (keep3 filtered)", f.event.Event)
	}
	rc.declare(2, nil) // All
	rc.awaitApplied(2)
	emitNames(t, pub, "keep4", "anything")
	if got, want := rc.eventsUntil("anything"), []string{"keep4", "anything"}; !slices.Equal(got, want) {
		t.Errorf("after declaring All got %q, want %q", got, want)
	}
}

// TestInterestBadPatternClosesOnlyThatClient: a declaration whose
// pattern does not compile closes the client that sent it with a
// protocol error naming the pattern, in a Hello or an Interest frame;
// other clients stay.
func TestInterestBadPatternClosesOnlyThatClient(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	other := ts.DialWatched(t, "A")

	rc := dialRaw(t, ts, "A")
	rc.helloV4(&wire.Interest{Patterns: []string{"ok"}})
	rc.declare(1, []string{"fine", "bad(pattern"})
	e := rc.closedWith()
	if e.Code != wire.CodeProtocol || !strings.Contains(e.Message, "bad(pattern") {
		t.Errorf("error frame %v %q, want a protocol error naming the pattern", e.Code, e.Message)
	}

	rc2 := dialRaw(t, ts, "A")
	rc2.write(wire.AppendHello(nil, &wire.Hello{Version: wire.InterestVersion, ClientID: rc2.id, Name: "raw4",
		Interest: &wire.Interest{Patterns: []string{"[z-a]"}}}))
	e = rc2.closedWith()
	if e.Code != wire.CodeProtocol || !strings.Contains(e.Message, "[z-a]") {
		t.Errorf("error frame %v %q, want a protocol error naming the pattern", e.Code, e.Message)
	}
	if logs := ts.Logs.String(); !strings.Contains(logs, "bad(pattern") {
		t.Errorf("the log does not name the bad pattern:\n%s", logs)
	}
	other.CheckKept(t, ts.Template)
}
