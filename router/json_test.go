package router_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// jsonConn is a client of the JSON text protocol, as the original Node
// agents were: JSON objects, each followed by a NUL byte.
type jsonConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialJSON(t testing.TB, path string) *jsonConn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &jsonConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// send writes text and a NUL.
func (jc *jsonConn) send(text string) {
	jc.t.Helper()
	if _, err := jc.nc.Write([]byte(text + "\x00")); err != nil {
		jc.t.Fatal(err)
	}
}

// emit sends an event as the original client did.
func (jc *jsonConn) emit(channel, event string, data any) {
	jc.t.Helper()
	b, err := json.Marshal(map[string]any{"channel": channel, "broadcast": false, "event": event, "data": data})
	if err != nil {
		jc.t.Fatal(err)
	}
	jc.send(string(b))
}

// next reads one message.
func (jc *jsonConn) next() (map[string]any, error) {
	text, err := jc.br.ReadBytes(0)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(text[:len(text)-1]))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("server sent %q: %w", text, err)
	}
	return m, nil
}

func (jc *jsonConn) mustNext() map[string]any {
	jc.t.Helper()
	m, err := jc.next()
	if err != nil {
		jc.t.Fatal(err)
	}
	return m
}

// closedWith reads until the nc-error message, expects the connection
// to end after it, and returns its data.
func (jc *jsonConn) closedWith() map[string]any {
	jc.t.Helper()
	for {
		m, err := jc.next()
		if err != nil {
			jc.t.Fatalf("connection ended without an %s message: %v", channel.ErrorEvent, err)
		}
		if m["event"] != channel.ErrorEvent {
			continue
		}
		// The end of the connection: EOF, or a reset when the server
		// closed with bytes of the client's still unread (a message
		// too long to read to its end).
		if _, err := jc.br.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			jc.t.Errorf("after the %s message: %v, want the end of the connection", channel.ErrorEvent, err)
		}
		return m["data"].(map[string]any)
	}
}

// TestJSONAndGoClients puts a JSON client and a Go client on one channel,
// and a JSON listener on a channel the first one propagates to: each
// hears the others in its own format.
func TestJSONAndGoClients(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	goA := ts.Dial(t, "A")
	recA := routertest.Record(t, goA, ".*")
	jsA := dialJSON(t, ts.Path("A"))
	jsA.emit("A", "hello-from-json", map[string]any{"n": 1, "list": []any{"x", true, nil, 2.5}})
	recA.WaitCount(t, "hello-from-json", 1)
	m := recA.Messages()[0]
	var data struct {
		N    int   `msgpack:"n"`
		List []any `msgpack:"list"`
	}
	if err := m.Decode(&data); err != nil {
		t.Fatal(err)
	}
	if data.N != 1 || fmt.Sprint(data.List) != "[x true <nil> 2.5]" || m.Channel != "A" || m.Origin != ts.Node() {
		t.Errorf("Go client heard %+v from channel %q origin %v", data, m.Channel, m.Origin)
	}

	jsB := dialJSON(t, ts.Path("B"))
	routertest.WaitFor(t, "the listener on B", func() bool { c, _ := ts.Clients("B"); return len(c) == 1 })
	if err := goA.Emit("hello-from-go", map[string]any{"text": "TESTE", "n": -7}); err != nil {
		t.Fatal(err)
	}
	for _, jc := range []*jsonConn{jsA, jsB} {
		got := jc.mustNext()
		if got["event"] != "hello-from-go" || got["channel"] != "A" || got["emmiteruuid"] != goA.ID().String() || got["broadcast"] != true {
			t.Errorf("JSON client heard %v", got)
		}
		if d := got["data"].(map[string]any); d["text"] != "TESTE" || d["n"] != json.Number("-7") {
			t.Errorf("JSON client heard data %v", d)
		}
	}
	// jsB hears the JSON client on A too, and A's JSON client never hears
	// itself.
	jsA.emit("A", "second", "x")
	if got := jsB.mustNext(); got["event"] != "second" || got["data"] != "x" {
		t.Errorf("JSON listener on B heard %v", got)
	}
	routertest.Fence(t, ts, "A", recA)
	if got := jsA.mustNext(); !strings.HasPrefix(got["event"].(string), "fence-") {
		t.Errorf("the JSON client heard %v before the fence; want nothing of its own", got)
	}
	routertest.WaitFor(t, "the fence to leave", func() bool { c, _ := ts.Clients("A"); return len(c) == 2 })
	if infos, _ := ts.Clients("A"); len(infos) != 2 {
		t.Errorf("%d clients on A, want 2", len(infos))
	} else {
		protos := map[string]int{}
		for _, ci := range infos {
			protos[ci.Protocol]++
		}
		if protos["json"] != 1 || protos["binary"] != 1 {
			t.Errorf("client protocols %v, want 1 json and 1 binary", protos)
		}
	}
}

// TestJSONBigEvent: one event whose frame is within maxframe and
// maxpending reaches a JSON client whose queue is empty, though its text
// (base64 data) is longer than maxpending; the events after it too.
// Before, the server dropped the client as a slow consumer.
func TestJSONBigEvent(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 65536, "channels": {"A": {}}`)
	goA := ts.Dial(t, "A")
	rec := routertest.Record(t, goA, "hi")
	js := dialJSON(t, ts.Path("A"))
	js.emit("A", "hi", nil) // a JSON client from now on
	rec.WaitCount(t, "hi", 1)
	if err := goA.Emit("big", bytes.Repeat([]byte{1}, 60000)); err != nil { // 80,000 bytes in base64
		t.Fatal(err)
	}
	if err := goA.Emit("after", 1); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"big", "after"} {
		if got := js.mustNext(); got["event"] != want {
			t.Fatalf("the JSON client heard %v, want %s", got["event"], want)
		}
	}
}

// TestJSONBigHeldEvent: as TestJSONBigEvent, for an event held while the
// server waits to know what the client speaks: once it is a JSON client,
// the event's text, longer than maxpending, is its only one, and it gets
// it. Before, the server dropped it as a slow consumer.
func TestJSONBigHeldEvent(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerWith(t, dir, dir+"/{channel}.sock", `"maxframe": 65536, "maxpending": 65536, "channels": {"A": {}}`,
		func(o *router.Options) { o.JSONGrace = time.Minute })
	silent := dialJSON(t, ts.Path("A"))
	routertest.WaitFor(t, "the connection to be accepted", func() bool { return ts.Channels()[0].Stats.Undecided == 1 })
	goA := ts.Dial(t, "A")
	if err := goA.Emit("big", bytes.Repeat([]byte{1}, 60000)); err != nil { // 80,000 bytes in base64
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the event to be held", func() bool { return ts.Channels()[0].Stats.FramesOut >= 1 || ts.Channels()[0].Stats.Pending > 0 })
	silent.emit("A", "hi", nil) // a JSON client from now on
	if got := silent.mustNext(); got["event"] != "big" {
		t.Fatalf("the JSON client heard %v, want big", got["event"])
	}
}

// TestJSONListenOnly connects a JSON client that never sends a byte, as an
// original agent that only listens: events sent before the server knows
// what it is are held, and it gets them all, in order, then the later ones.
func TestJSONListenOnly(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	// A grace long enough that the early events surely arrive within it.
	ts := routertest.NewServerWith(t, dir, dir+"/{channel}.sock", `"channels": {"A": {}}`,
		func(o *router.Options) { o.JSONGrace = 2 * time.Second })
	pub := ts.Dial(t, "A")
	listener := dialJSON(t, ts.Path("A"))
	// Once the server has accepted the connection, it holds what comes
	// for it until it knows the protocol.
	routertest.WaitFor(t, "the connection to be accepted", func() bool {
		return ts.Channels()[0].Stats.Undecided == 1
	})
	for i := range 5 {
		if err := pub.Emit("early", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the silent client to be taken for JSON", func() bool {
		c, _ := ts.Clients("A")
		return len(c) == 2
	})
	if err := pub.Emit("late", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 6 {
		m := listener.mustNext()
		got = append(got, fmt.Sprintf("%v %v", m["event"], m["data"]))
	}
	want := "[early 0 early 1 early 2 early 3 early 4 late <nil>]"
	if fmt.Sprint(got) != want {
		t.Errorf("listen-only client heard %v, want %v", got, want)
	}
	if !strings.Contains(ts.Logs.String(), "held=5") {
		t.Error("the log does not say that 5 events were held")
	}
}

// TestJSONEncodedOnce checks that an event heard by many JSON clients, on
// its own channel and a propagated one, is put into JSON form once.
func TestJSONEncodedOnce(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	var listeners []*jsonConn
	for _, ch := range []string{"A", "A", "A", "B", "B"} {
		jc := dialJSON(t, ts.Path(ch))
		listeners = append(listeners, jc)
	}
	routertest.WaitFor(t, "5 JSON clients", func() bool {
		a, _ := ts.Clients("A")
		b, _ := ts.Clients("B")
		return len(a) == 3 && len(b) == 2
	})
	pub := ts.Dial(t, "A")
	const n = 10
	for i := range n {
		pub.Emit("tick", i)
	}
	for _, jc := range listeners {
		for i := range n {
			if m := jc.mustNext(); m["data"] != json.Number(fmt.Sprint(i)) {
				t.Fatalf("heard %v, want tick %d", m, i)
			}
		}
	}
	var encoded uint64
	for _, ci := range ts.Channels() {
		encoded += ci.Stats.JSONEncoded
	}
	if encoded != n {
		t.Errorf("%d events were put into JSON form %d times, want once each", n, encoded)
	}
}

// TestJSONBadInput sends what a JSON client must not: each time that one
// client is closed with a reason, and the channel's others are unharmed.
func TestJSONBadInput(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 2048, "maxpending": 65536, "channels": {"A": {}}`)
	pub := ts.DialWatched(t, "A")
	sub := ts.DialWatched(t, "A")
	rec := routertest.Record(t, sub.Client, "ok")
	for _, tt := range []struct {
		name, text, reason string
	}{
		{"not JSON", `{"event": "x", oops}`, "bad JSON message"},
		{"array", `{"event":"x"}` + "\x00" + `["event", "x"]`, "want a JSON object, got an array"},
		{"string", `{"event":"x"}` + "\x00" + `"event"`, "want a JSON object, got a string"},
		{"two objects", `{"event":"x"}{"event":"y"}`, "more after the object"},
		{"no event", `{"channel":"A","data":1}`, `no "event" key`},
		{"empty event", `{"event":""}`, `"event": invalid event name "" of 0 bytes`},
		{"event not a string", `{"event":7}`, `"event": want a string, got a number`},
		{"other channel", `{"channel":"B","event":"x"}`, `names channel "B" on the socket of channel "A"`},
		{"bad id", `{"event":"x","id":"nope"}`, `"id": want a UUID`},
		{"no NUL within maxframe", `{"event":"x","data":"` + strings.Repeat("y", 4096), "no NUL within 2048 bytes"},
		{"frame over maxframe", `{"event":"x","data":[` + strings.Repeat("1e9,", 480) + `1e9]}`, "the limit (maxframe) is 2048"}, // 9 bytes of float64 each
		{"truncated", `{"event":"x","data":[1,2`, "bad JSON message"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jc := dialJSON(t, ts.Path("A"))
			jc.send(tt.text)
			e := jc.closedWith()
			if msg, _ := e["message"].(string); !strings.Contains(msg, tt.reason) || e["code"] == nil {
				t.Errorf("nc-error data %v; want a code and a message containing %q", e, tt.reason)
			}
			routertest.WaitFor(t, "the reason in the log", func() bool {
				return strings.Contains(ts.Logs.String(), strings.ReplaceAll(tt.reason, `"`, `\"`))
			})
			pub.Emit("ok", nil)
			rec.WaitCount(t, "ok", 1)
			rec.Reset()
		})
	}
	// The others were not dropped and reconnected meanwhile.
	ts.CheckKept(t, pub)
	ts.CheckKept(t, sub)
}

// TestJSONLateHello has a framed client that stays silent past the JSON
// grace: the server took it for a JSON listener, so its late hello closes
// it with a reason that names the grace.
func TestJSONLateHello(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	rc := dialRaw(t, ts, "A")
	routertest.WaitFor(t, "the silent client to be taken for JSON", func() bool {
		c, _ := ts.Clients("A")
		return len(c) == 1
	})
	rc.write(wire.AppendHello(nil, &wire.Hello{Version: 1, ClientID: rc.id}))
	routertest.WaitFor(t, "the reason in the log", func() bool {
		return strings.Contains(ts.Logs.String(), "framed hello arrived after the connection had been silent")
	})
}

// TestJSONOriginalPaths serves sockets named as the original netcluster
// named them (/var/run/netcluster-{channel}: no ".sock"), in a temporary
// directory, and has a JSON client and a Go client meet there.
func TestJSONOriginalPaths(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	template := filepath.Join(dir, "netcluster-{channel}")
	ts := routertest.NewServerWith(t, dir, template, `"channels": {"B": {}}`)
	path := filepath.Join(dir, "netcluster-B")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %s: %v %v", path, fi, err)
	}
	jc := dialJSON(t, path)
	routertest.WaitFor(t, "the JSON client", func() bool { c, _ := ts.Clients("B"); return len(c) == 1 })
	c, err := bus.Dial(t.Context(), "B", bus.SocketTemplate(template))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Emit("log", "TESTE")
	if m := jc.mustNext(); m["event"] != "log" || m["data"] != "TESTE" {
		t.Errorf("JSON client heard %v", m)
	}
}

// TestJSONRequestReply maps the request/reply fields both ways: a frame's
// trailing "to" and "re" come out as JSON keys, and a JSON message's
// "id", "to" and "re" go into the frame.
func TestJSONRequestReply(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	rc := dialRaw(t, ts, "A")
	rc.hello()
	jc := dialJSON(t, ts.Path("A")) // silent: a JSON client once the grace is over
	routertest.WaitFor(t, "both clients", func() bool { c, _ := ts.Clients("A"); return len(c) == 2 })
	infos, _ := ts.Clients("A")
	var jsonID uuid.UUID
	for _, ci := range infos {
		if ci.Protocol == "json" {
			jsonID = ci.ID
		}
	}

	// Binary to JSON: an answer, to the JSON client, in reply to re.
	re := uuid.New()
	frame := rc.eventWith("answer", jsonID, re)
	rc.write(frame)
	m := jc.mustNext()
	if m["event"] != "answer" || m["to"] != jsonID.String() || m["re"] != re.String() || m["broadcast"] != false {
		t.Errorf("JSON client heard %v; want to %v, re %v, broadcast false", m, jsonID, re)
	}

	// JSON to binary.
	id, to := uuid.New(), rc.id
	jc.send(fmt.Sprintf(`{"event":"ask","id":%q,"to":%q,"re":null}`, id, to))
	got, err := rc.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	body := got[wire.HeaderLen:]
	ev, err := wire.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	tail := append([]byte{0xc4, 16}, to[:]...)
	tail = append(tail, 0xc0)
	if string(ev.Event) != "ask" || uuid.UUID(ev.ID) != id || uuid.UUID(ev.Sender) != jsonID || !bytes.HasSuffix(body, tail) || body[0] != 0x99 {
		t.Errorf("raw client got event %q id %v sender %v body % x; want ask %v from %v ending in % x", ev.Event, uuid.UUID(ev.ID), uuid.UUID(ev.Sender), body, id, jsonID, tail)
	}
}

// eventWith builds an event frame with the request/reply fields "to" and
// "re" after the data.
func (rc *rawConn) eventWith(name string, to, re uuid.UUID) []byte {
	frame := rc.event(name)
	frame[wire.HeaderLen] = 0x99 // 9 elements: the event's 7, then to and re
	frame = append(frame, 0xc4, 16)
	frame = append(frame, to[:]...)
	frame = append(frame, 0xc4, 16)
	frame = append(frame, re[:]...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-wire.HeaderLen))
	return frame
}

// TestJSONShutdown checks that a JSON client hears why the server closes
// it when the server stops, after what was queued for it.
func TestJSONShutdown(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	jc := dialJSON(t, ts.Path("A"))
	jc.emit("A", "hi", nil) // decided at once: the first byte is '{'
	routertest.WaitFor(t, "the JSON client", func() bool { c, _ := ts.Clients("A"); return len(c) == 1 })
	pub := ts.Dial(t, "A")
	pub.Emit("last", "words")
	if m := jc.mustNext(); m["event"] != "last" {
		t.Fatalf("heard %v, want last", m)
	}
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()
	e := jc.closedWith()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if e["code"] != json.Number("5") || e["message"] != "server shutting down" {
		t.Errorf("nc-error data %v, want code 5 and the shutdown", e)
	}
}

// TestJSONGraceMissed runs a server whose JSON grace is over before any
// client can speak: a Go client is then taken for a JSON client, and its
// Dial fails saying so, rather than with a confusing frame error.
func TestJSONGraceMissed(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerWith(t, dir, dir+"/{channel}.sock", `"channels": {"A": {}}`,
		func(o *router.Options) { o.JSONGrace = time.Nanosecond })
	_, err := bus.Dial(t.Context(), "A", bus.SocketTemplate(ts.Template))
	if err == nil || !strings.Contains(err.Error(), "JSON grace") {
		t.Fatalf("Dial: %v; want an error naming the JSON grace", err)
	}
	routertest.WaitFor(t, "the reason in the log", func() bool {
		return strings.Contains(ts.Logs.String(), "framed hello arrived after the connection had been silent")
	})
}

// TestJSONHeldBounded checks that what is held for a silent connection is
// bounded by maxpending: past it, the connection is dropped as a slow
// consumer, and the others go on.
func TestJSONHeldBounded(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerWith(t, dir, dir+"/{channel}.sock",
		`"maxframe": 16384, "maxpending": 65536, "channels": {"A": {"overflow": "drop"}}`,
		func(o *router.Options) { o.JSONGrace = time.Minute })
	rec := routertest.Record(t, ts.Dial(t, "A"), "blob")
	silent := dialJSON(t, ts.Path("A"))
	routertest.WaitFor(t, "the connection to be accepted", func() bool {
		return ts.Channels()[0].Stats.Undecided == 1
	})
	pub := ts.Dial(t, "A")
	blob := strings.Repeat("x", 8<<10)
	for i := range 16 { // 128 KiB: twice maxpending
		pub.Emit("blob", blob)
		rec.WaitCount(t, "blob", i+1) // paced to the reading client
	}
	routertest.WaitFor(t, "the silent connection to be dropped", func() bool {
		st := ts.Channels()[0].Stats
		return st.SlowConsumers == 1 && st.Undecided == 0
	})
	if _, err := silent.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("the dropped connection: %v, want EOF", err)
	}
}

// TestJSONControlRequest asks the control channel a question in JSON: the
// answer comes back to the JSON asker only, as JSON, naming the request.
func TestJSONControlRequest(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	other := routertest.Record(t, ts.Dial(t, router.ControlChannel), ".*")
	jc := dialJSON(t, ts.Path(router.ControlChannel))
	id := uuid.New()
	jc.send(fmt.Sprintf(`{"event":"nc-control-channels","id":%q,"data":null}`, id))
	m := jc.mustNext()
	if m["event"] != "nc-control-channels-response" || m["re"] != id.String() || m["broadcast"] != false {
		t.Fatalf("JSON asker heard %v; want nc-control-channels-response with re %v", m, id)
	}
	data, _ := m["data"].(map[string]any)
	chans, _ := data["channels"].([]any)
	var names []string
	for _, c := range chans {
		if c, ok := c.(map[string]any); ok {
			names = append(names, fmt.Sprint(c["name"]))
		}
	}
	if strings.Join(names, ",") != "A,control" {
		t.Errorf("channels answered %v; want A and control", data)
	}
	routertest.Fence(t, ts, router.ControlChannel, other)
	if n := len(other.Events()); n != 1 { // the fence's marker only
		t.Errorf("another control client heard %v; requests and answers go to the asker only", other.Events())
	}
}
