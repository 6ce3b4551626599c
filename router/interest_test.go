package router_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// helloV4 does the handshake as a client of protocol version 4 that
// declares in (nil: nothing) in its Hello.
func (rc *rawConn) helloV4(in *wire.Interest) {
	rc.t.Helper()
	rc.helloAs(&wire.Hello{Version: wire.InterestVersion, ClientID: rc.id, Name: "raw4", Interest: in})
}

// helloAs does the handshake with the Hello h, and checks that the
// Welcome agrees on h's version.
func (rc *rawConn) helloAs(h *wire.Hello) {
	rc.t.Helper()
	rc.helloWith(h)
	if rc.w.Version != h.Version {
		rc.t.Fatalf("welcome of version %d, want %d", rc.w.Version, h.Version)
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
// protocol error naming the pattern, in a Hello or an Interest frame,
// and so does one past the limits; other clients stay.
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
	rc3 := dialRaw(t, ts, "A")
	rc3.helloV4(nil)
	rc3.declare(1, make([]string, wire.MaxPatterns+1))
	e = rc3.closedWith()
	if e.Code != wire.CodeProtocol || !strings.Contains(e.Message, "patterns") {
		t.Errorf("error frame %v %q, want a protocol error for too many patterns", e.Code, e.Message)
	}
	if logs := ts.Logs.String(); !strings.Contains(logs, "bad(pattern") {
		t.Errorf("the log does not name the bad pattern:\n%s", logs)
	}
	other.CheckKept(t, ts.Template)
}

// newFilteredFanout is newRawFanout with half of 2*subs receivers of
// version 4 declaring the event the publisher sends ("bench") and the
// other half another ("other"), so that each event is queued for subs
// receivers and filtered for subs. skip is a frame of the other event.
func newFilteredFanout(t testing.TB, subs int) (f *rawFanout, skipped []*rawConn, skip []byte) {
	ts := routertest.NewServer(t, `"retainbytes": 65536, "pinginterval": "0s", "channels": {"A": {}}`)
	f = &rawFanout{}
	for i := range 2 * subs {
		rc := dialRaw(t, ts, "A")
		if i%2 == 0 {
			rc.helloV4(&wire.Interest{Patterns: []string{"bench"}})
			f.recv = append(f.recv, rc)
		} else {
			rc.helloV4(&wire.Interest{Patterns: []string{"other", "more.*"}})
			skipped = append(skipped, rc)
		}
		rc.nc.SetDeadline(time.Time{})
	}
	m := f.publisher(t, ts)
	m.Event = "other"
	return f, skipped, wire.AppendEvent(nil, &m)
}

// TestServerAllocsFiltered: with filtering on, the server still
// allocates nothing per event once warm: each event goes to four clients
// that listen to it and is filtered for four that do not.
func TestServerAllocsFiltered(t *testing.T) {
	if poisonBuild {
		t.Skip("with -tags ncpoison, buffers are never reused")
	}
	f, skipped, skip := newFilteredFanout(t, 4)
	f.deadline(skipped...)
	// One event a round, as in TestServerAllocs, alternately one that
	// half the receivers listen to and one the other half does.
	n := 0
	round := func() {
		frame, to, want := f.frame, f.recv, "bench"
		if n++; n%2 == 0 {
			frame, to, want = skip, skipped, "other"
		}
		f.pub.write(frame)
		for _, rc := range to {
			if _, err := io.ReadFull(rc.nc, f.buf); err != nil {
				t.Fatal(err)
			}
			// A client sent what it does not listen to would read that
			// first.
			if h, err := wire.ParseEvent(f.buf[wire.HeaderLen:]); err != nil || string(h.Event) != want {
				t.Fatalf("a client that listens to %s read %q (%v)", want, h.Event, err)
			}
		}
	}
	for range 100 {
		round()
	}
	if a := serverAllocs(round); a != 0 {
		t.Errorf("%v allocations per event routed to 4 clients and filtered for 4, want 0", a)
	}
}

// helloV does the handshake as a client of the given protocol version,
// declaring nothing.
func (rc *rawConn) helloV(version uint64) {
	rc.t.Helper()
	rc.helloAs(&wire.Hello{Version: version, ClientID: rc.id, Name: "raw"})
}

// TestInterestBesideOlderClients: beside a client of version 4 that
// declares what it listens to, a client of version 3, one of version 4
// that declares nothing, a Go client and a JSON client all get every
// event, each in the order it was emitted; the filtered client gets its
// share in that order too. A client of version 3 that sends an Interest
// frame breaks the protocol.
func TestInterestBesideOlderClients(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	pub := ts.Dial(t, "A", bus.Name("pub"))
	goClient := routertest.Record(t, ts.Dial(t, "A", bus.Name("go")), ".*")
	filtered := dialRaw(t, ts, "A")
	filtered.helloV4(&wire.Interest{Patterns: []string{"a", "end"}})
	v3 := dialRaw(t, ts, "A")
	v3.helloV(wire.ResumeVersion)
	undeclared := dialRaw(t, ts, "A")
	undeclared.helloV4(nil)
	jc := dialJSON(t, ts.Path("A")) // silent: a JSON client once the grace is over
	routertest.WaitFor(t, "every client", func() bool { c, _ := ts.Clients("A"); return len(c) == 6 })

	var names, mine []string
	for i := range 100 {
		n := []string{"a", "b", "c"}[i%3]
		names = append(names, n)
		if n == "a" {
			mine = append(mine, n)
		}
	}
	names, mine = append(names, "end"), append(mine, "end")
	emitNames(t, pub, names...)
	if got := filtered.eventsUntil("end"); !slices.Equal(got, mine) {
		t.Errorf("the filtered client got %q, want %q", got, mine)
	}
	for what, rc := range map[string]*rawConn{"version 3": v3, "undeclared": undeclared} {
		if got := rc.eventsUntil("end"); !slices.Equal(got, names) {
			t.Errorf("the %s client got %q, want every event in order", what, got)
		}
	}
	var heard []string
	for len(heard) < len(names) {
		heard = append(heard, jc.mustNext()["event"].(string))
	}
	if !slices.Equal(heard, names) {
		t.Errorf("the JSON client got %q, want every event in order", heard)
	}
	routertest.WaitFor(t, "the Go client", func() bool { return len(goClient.Events()) == len(names) })
	if got := goClient.Events(); !slices.Equal(got, names) {
		t.Errorf("the Go client got %q, want every event in order", got)
	}

	v3.declare(1, []string{"a"})
	if e := v3.closedWith(); e.Code != wire.CodeProtocol || !strings.Contains(e.Message, "interest") {
		t.Errorf("a version 3 client's Interest frame: %v %q, want a protocol error", e.Code, e.Message)
	}
}

// TestInterestAddressed: a client that listens to nothing still gets the
// events addressed to it: an event sent to it, and the reply to its
// request.
func TestInterestAddressed(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	answerer := ts.Dial(t, "A", bus.Name("answerer"))
	if _, err := answerer.On("whoami", func(m bus.Message) { answerer.Reply(m, "you") }); err != nil {
		t.Fatal(err)
	}
	sender := dialRaw(t, ts, "A")
	sender.hello()
	rc := dialRaw(t, ts, "A")
	rc.helloV4(&wire.Interest{Patterns: []string{}})
	routertest.WaitFor(t, "every client", func() bool { c, _ := ts.Clients("A"); return len(c) == 3 })

	sender.write(sender.event("broadcast"))
	sender.write(sender.eventWith("direct", rc.id, uuid.Nil))
	if f := rc.next(); string(f.event.Event) != "direct" || uuid.UUID(f.event.To) != rc.id {
		t.Errorf("got %q to %v, want the event addressed to the client (the broadcast one filtered)", f.event.Event, uuid.UUID(f.event.To))
	}
	ask := rc.event("whoami")
	rc.write(ask)
	h, err := wire.ParseEvent(ask[wire.HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	f := rc.next()
	if string(f.event.Event) != "whoami"+bus.ReplySuffix || f.event.Re != h.ID {
		t.Errorf("got %q in reply to %v, want the reply to the request", f.event.Event, uuid.UUID(f.event.Re))
	}
}

// TestInterestPropagated: events propagated from another channel are
// filtered as the channel's own.
func TestInterestPropagated(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	pub := ts.Dial(t, "A", bus.Name("pub"))
	rc := dialRaw(t, ts, "B")
	rc.helloV4(&wire.Interest{Patterns: []string{"keep[0-9]", "end"}})
	all := dialRaw(t, ts, "B")
	all.helloV4(&wire.Interest{All: true})
	routertest.WaitFor(t, "both clients", func() bool { c, _ := ts.Clients("B"); return len(c) == 2 })

	emitNames(t, pub, "drop1", "keep1", "drop2", "keep2", "end")
	if got, want := rc.eventsUntil("end"), []string{"keep1", "keep2", "end"}; !slices.Equal(got, want) {
		t.Errorf("on B got %q, want %q", got, want)
	}
	if got, want := all.eventsUntil("end"), []string{"drop1", "keep1", "drop2", "keep2", "end"}; !slices.Equal(got, want) {
		t.Errorf("a client of B that declared All got %q, want %q", got, want)
	}
	if got := channelStats(t, ts, "B").Stats.Filtered; got != 2 {
		t.Errorf("B filtered %d, want 2", got)
	}
}

// TestInterestResumeReplay: the retained events a client asks for in
// its Hello are filtered by the interest that Hello declares.
func TestInterestResumeReplay(t *testing.T) {
	ts := routertest.NewServer(t, `"retainbytes": 1048576, "retainage": "1m", "channels": {"A": {}}`)
	pub := ts.Dial(t, "A", bus.Name("pub"))
	emitNames(t, pub, "keep1", "drop1", "keep2", "drop2")
	routertest.WaitFor(t, "the ring to hold the events", func() bool { return channelStats(t, ts, "A").Stats.Retained == 4 })

	rc := dialRaw(t, ts, "A")
	rc.helloWith(&wire.Hello{Version: wire.InterestVersion, ClientID: rc.id, Name: "raw4", Since: 60_000,
		Interest: &wire.Interest{Patterns: []string{"keep.*", "end"}}})
	emitNames(t, pub, "drop3", "end")
	if got, want := rc.eventsUntil("end"), []string{"keep1", "keep2", "end"}; !slices.Equal(got, want) {
		t.Errorf("history and live events: %q, want %q", got, want)
	}
	if st := channelStats(t, ts, "A").Stats; st.Filtered != 3 || st.Replayed != 2 {
		t.Errorf("filtered %d, replayed %d; want 3 (two retained, one live) and 2", st.Filtered, st.Replayed)
	}
}

// helloWith does the handshake with the Hello h.
func (rc *rawConn) helloWith(h *wire.Hello) {
	rc.t.Helper()
	rc.write(wire.AppendHello(nil, h))
	frame, err := rc.fr.ReadFrame()
	if err != nil {
		rc.t.Fatal(err)
	}
	if rc.w, err = wire.DecodeWelcome(frame[wire.HeaderLen:]); err != nil {
		rc.t.Fatal(err)
	}
}

// TestInterestFromNATS: events that come from NATS are filtered, on
// their channel and on the channels it propagates to.
func TestInterestFromNATS(t *testing.T) {
	ns := startNATS(t, 0)
	s1, s2 := natsNode(t, ns.ClientURL()), natsNode(t, ns.ClientURL())
	waitNATS(t, s1, s2)
	probes := routertest.Record(t, s2.Dial(t, "A", bus.Name("probes")), "probe")
	onA, onB := dialRaw(t, s2, "A"), dialRaw(t, s2, "B")
	for _, rc := range []*rawConn{onA, onB} {
		rc.helloV4(&wire.Interest{Patterns: []string{"keep.*", "end"}})
		rc.nc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	pub := s1.Dial(t, "A", bus.Name("pub"))
	probe(t, pub, probes)

	emitNames(t, pub, "drop1", "keep1", "drop2", "keep2", "end")
	for what, rc := range map[string]*rawConn{"A": onA, "B (propagated)": onB} {
		if got, want := rc.eventsUntil("end"), []string{"keep1", "keep2", "end"}; !slices.Equal(got, want) {
			t.Errorf("on %s of the other server got %q, want %q", what, got, want)
		}
	}
	if st := channelStats(t, s2, "B").Stats; st.Filtered < 2 {
		t.Errorf("B of the other server filtered %d, want at least 2", st.Filtered)
	}
}

// TestInterestShown: showchannel and showclient, in today's forms and
// the original's, show a client's patterns as interest, and null for a
// client that takes every event.
func TestInterestShown(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	ctl := ts.Dial(t, router.ControlChannel)
	plain := dialRaw(t, ts, "A")
	plain.helloV4(nil) // declares nothing
	rc := dialRaw(t, ts, "A")
	rc.helloV4(&wire.Interest{Patterns: []string{"one", "two.*"}})
	rc.declare(1, []string{"three", "four.*"})
	rc.awaitApplied(1)

	want := []any{"three", "four.*"}
	for _, form := range []map[string]any{{"id": rc.id.String()}, {"channel": "A", "client": rc.id.String()}} {
		got := routertest.Control(t, ctl, "showclient", form)
		if !slices.Equal(toSlice(got["interest"]), want) {
			t.Errorf("showclient %v: interest %v, want %v", form, got["interest"], want)
		}
	}
	got := routertest.Control(t, ctl, "showclient", map[string]any{"id": plain.id.String()})
	if v, ok := got["interest"]; !ok || v != nil {
		t.Errorf("showclient of a client that declared nothing: interest %v (present %v), want null", v, ok)
	}
	shown := func(what string, clients []any) {
		t.Helper()
		n := 0
		for _, c := range clients {
			m := c.(map[string]any)
			if m["id"] == rc.id.String() && slices.Equal(toSlice(m["interest"]), want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s does not show the raw client's interest: %v", what, clients)
		}
	}
	shown("showchannel", routertest.Control(t, ctl, "showchannel", map[string]any{"channel": "A"})["clients"].([]any))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := ctl.Request(ctx, router.ControlPrefix+"showchannel", "A") // the original's form
	if err != nil {
		t.Fatal(err)
	}
	var list []any
	if err := reply.Decode(&list); err != nil {
		t.Fatal(err)
	}
	shown("showchannel in the original's form", list)
}

func toSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestInterestFilteredHoldsNobody: a client that never reads, but does
// not listen to what a publisher sends, is not sent it: the events cost
// its queue nothing, never hold the publisher, and it is not dropped as
// a slow consumer, however much more than maxpending flows past it.
func TestInterestFilteredHoldsNobody(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 262144, "stalltimeout": "300ms", "channels": {"A": {}}`)
	pub := ts.Dial(t, "A", bus.Name("pub"))
	deaf := dialRaw(t, ts, "A")
	deaf.helloV4(&wire.Interest{Patterns: []string{"other"}})
	routertest.WaitFor(t, "both clients", func() bool { c, _ := ts.Clients("A"); return len(c) == 2 })

	const n = 20_000 // some 4 MB of frames, 16 times maxpending
	payload := make([]byte, 128)
	for range n {
		if err := pub.Emit("flow", payload); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "every event to be handled", func() bool { return channelStats(t, ts, "A").Stats.EventsIn == n })
	st := channelStats(t, ts, "A").Stats
	if st.Stalls != 0 || st.SlowConsumers != 0 || st.StallTimeouts != 0 {
		t.Errorf("stalls %d, slow consumers %d, stall timeouts %d; want none for a client that does not listen", st.Stalls, st.SlowConsumers, st.StallTimeouts)
	}
	if st.Filtered != n {
		t.Errorf("filtered %d, want %d", st.Filtered, n)
	}
	cs, _ := ts.Clients("A")
	for _, c := range cs {
		if c.ID == deaf.id && c.Pending != 0 {
			t.Errorf("the deaf client has %d bytes pending, want 0", c.Pending)
		}
	}
	if len(cs) != 2 {
		t.Errorf("%d clients, want 2: the deaf one was dropped", len(cs))
	}
}

// TestInterestFromMulticast: events that come from the multicast group
// are filtered, on their channel and on the channels it propagates to.
func TestInterestFromMulticast(t *testing.T) {
	port := mcasttest.Port()
	s1 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", `"channels": {"A": {"propagatetonet": true, "propagatetochannels": "B"}, "B": {}}`)
	waitPeers(t, s1, s2)
	onA, onB := dialRaw(t, s2, "A"), dialRaw(t, s2, "B")
	for _, rc := range []*rawConn{onA, onB} {
		rc.helloV4(&wire.Interest{Patterns: []string{"keep.*", "end"}})
		rc.nc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	pub := s1.Dial(t, "A", bus.Name("pub"))
	emitNames(t, pub, "drop1", "keep1", "drop2", "keep2", "end")
	for what, rc := range map[string]*rawConn{"A": onA, "B (propagated)": onB} {
		if got, want := rc.eventsUntil("end"), []string{"keep1", "keep2", "end"}; !slices.Equal(got, want) {
			t.Errorf("on %s of the other server got %q, want %q", what, got, want)
		}
	}
	for _, name := range []string{"A", "B"} {
		if st := channelStats(t, s2, name).Stats; st.Filtered != 2 {
			t.Errorf("%s of the other server filtered %d, want 2", name, st.Filtered)
		}
	}
}

// BenchmarkFanoutFiltered is BenchmarkFanoutRaw with filters: each
// event goes to S receivers that listen to it and is filtered for S
// others, of version 4 all.
func BenchmarkFanoutFiltered(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run(fmt.Sprintf("1to%d+%d", subs, subs), func(b *testing.B) {
			f, _, _ := newFilteredFanout(b, subs)
			runFanout(b, f)
		})
	}
}

// TestInterestWidenedUnderTraffic: a client widens its interest one name
// at a time while a publisher emits a stream cycling through the names.
// No event of a name is sent before the declaration that adds it, and
// every event of it emitted after that declaration's Applied has arrived
// is received, in order.
func TestInterestWidenedUnderTraffic(t *testing.T) {
	// Small queues: the publisher is held back to the reader's pace
	// with little in between.
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 262144, "channels": {"A": {}}`)
	// Events cycle through names+1 names; the last one is declared from
	// the Hello on, so that events keep coming whatever is filtered.
	const names = 16
	name := func(i int64) string { return fmt.Sprintf("n%d", i%(names+1)) }
	rc := dialRaw(t, ts, "A")
	declared := []string{"end", name(names)}
	rc.helloV4(&wire.Interest{Patterns: slices.Clone(declared)})
	rc.nc.SetDeadline(time.Now().Add(60 * time.Second))
	pub := ts.Dial(t, "A", bus.Name("pub"))
	routertest.WaitFor(t, "both clients", func() bool { c, _ := ts.Clients("A"); return len(c) == 2 })

	// The publisher stays at most window events ahead of the reader's
	// progress (the last index it read, or one an Applied certainly
	// precedes): the events the client does not listen to hold it back
	// in no way, and it would run away with them.
	const window = 256
	var next, progress atomic.Int64 // the index of the next event the publisher emits; the reader's progress
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				// Its last event, after all the others.
				if err := pub.Emit("end", nil); err != nil {
					t.Error(err)
				}
				return
			default:
			}
			if next.Load()-progress.Load() > window {
				time.Sleep(20 * time.Microsecond)
				continue
			}
			i := next.Add(1) - 1
			if err := pub.Emit(name(i), i); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	since := map[string]int64{name(names): 0} // name -> the first index certainly emitted after its Applied
	got := make(map[string][]int64)
	read := func(f rawFrame) {
		n := string(f.event.Event)
		if _, ok := since[n]; !ok && n != "end" {
			t.Fatalf("got %s before the declaration that adds it was sent", n)
		}
		var i int64
		if err := msgpack.Unmarshal(f.event.Data, &i); err != nil {
			t.Fatal(err)
		}
		got[n] = append(got[n], i)
		progress.Store(i)
	}
	for k := range int64(names) {
		declared = append(declared, name(k))
		since[name(k)] = -1 // sent: from now on it may come
		rc.declare(uint64(k+1), slices.Clone(declared))
		for {
			f := rc.next()
			if f.typ == wire.FrameApplied {
				since[name(k)] = next.Load()
				progress.Store(since[name(k)])
				break
			}
			read(f)
		}
		// Read on past a whole cycle of names emitted after the Applied:
		// order per sender says what the client was owed by then.
		for progress.Load() < since[name(k)]+names+1 {
			read(rc.next())
		}
	}
	close(stop) // the publisher emits "end", reading goes on meanwhile
	for {
		f := rc.next()
		if string(f.event.Event) == "end" {
			break
		}
		read(f)
	}
	<-stopped
	last := next.Load()
	for k := range int64(names + 1) {
		n := name(k)
		var want []int64
		for i := since[n]; i < last; i++ {
			if name(i) == n {
				want = append(want, i)
			}
		}
		have := got[n]
		if len(want) == 0 {
			t.Errorf("%s: nothing emitted after its Applied", n)
			continue
		}
		var missing []int64
		for _, i := range want {
			if !slices.Contains(have, i) {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: %d of the %d events emitted after its Applied missing, the first of index %d", n, len(missing), len(want), missing[0])
		}
		if !slices.IsSorted(have) {
			t.Errorf("%s: out of order: %v", n, have)
		}
	}
}

// TestInterestClientsComeAndGo: once events of a name have flowed, a
// client that comes afterwards and listens to the name gets the next
// ones, and one that leaves takes nothing with it; the events filtered
// out are counted per client that did not take them.
func TestInterestClientsComeAndGo(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	pub := ts.Dial(t, "A")
	first := dialRaw(t, ts, "A")
	first.helloV4(&wire.Interest{Patterns: []string{"x.*"}})
	other := dialRaw(t, ts, "A")
	other.helloV4(&wire.Interest{Patterns: []string{"y"}})
	routertest.WaitFor(t, "both raw clients to be listed", func() bool { cs, _ := ts.Clients("A"); return len(cs) == 3 })
	emitNames(t, pub, "x1", "x2")
	if got := first.eventsUntil("x2"); !slices.Equal(got, []string{"x1", "x2"}) {
		t.Fatalf("first got %q", got)
	}

	second := dialRaw(t, ts, "A")
	second.helloV4(&wire.Interest{Patterns: []string{"x2|x3"}})
	routertest.WaitFor(t, "the second to be listed", func() bool { cs, _ := ts.Clients("A"); return len(cs) == 4 })
	emitNames(t, pub, "x2", "x3", "y")
	if got := second.eventsUntil("x3"); !slices.Equal(got, []string{"x2", "x3"}) {
		t.Errorf("the client that came later got %q, want x2 and x3", got)
	}
	if got := first.eventsUntil("x3"); !slices.Equal(got, []string{"x2", "x3"}) {
		t.Errorf("first got %q, want x2 and x3", got)
	}
	if f := other.next(); string(f.event.Event) != "y" {
		t.Errorf("other got %q, want y", f.event.Event)
	}

	first.nc.Close()
	routertest.WaitFor(t, "the first to leave", func() bool { cs, _ := ts.Clients("A"); return len(cs) == 3 })
	emitNames(t, pub, "x3")
	if f := second.next(); string(f.event.Event) != "x3" {
		t.Errorf("after the first left, the second got %q, want x3", f.event.Event)
	}
	// x1, x2: other (2); x2, x3, y: other (2), second (1), first (1); x3: other (1).
	routertest.WaitFor(t, "7 filtered out", func() bool { return channelStats(t, ts, "A").Stats.Filtered == 7 })
}
