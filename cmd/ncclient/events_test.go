package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestEmit emits from the command line; a real client on the channel,
// and one on the channel it propagates to, decode what arrives as Go
// values.
func TestEmit(t *testing.T) {
	ts := newServer(t)
	a := ts.Dial(t, "A")
	b := ts.Dial(t, "B")
	ra := routertest.Record(t, a, "log|none")
	rb := routertest.Record(t, b, "log")

	must(t, ts.Template, "emit", "A", "log", `{"x": 1, "y": [1.5, "a"], "n": -3, "big": 18446744073709551615}`)
	ra.WaitCount(t, "log", 1)
	rb.WaitCount(t, "log", 1)
	var got struct {
		X   int    `json:"x"`
		Y   []any  `json:"y"`
		N   int64  `json:"n"`
		Big uint64 `json:"big"`
	}
	m := ra.Messages()[0]
	if err := m.Decode(&got); err != nil {
		t.Fatalf("decoding %v: %v", m, err)
	}
	if got.X != 1 || got.N != -3 || got.Big != 18446744073709551615 || len(got.Y) != 2 || got.Y[0] != 1.5 || got.Y[1] != "a" {
		t.Errorf("A heard %+v", got)
	}
	if m.Channel != "A" || rb.Messages()[0].Channel != "A" {
		t.Errorf("channels %q and %q, want A for both", m.Channel, rb.Messages()[0].Channel)
	}

	// No data is nil.
	must(t, ts.Template, "emit", "A", "none")
	ra.WaitCount(t, "none", 1)
	for _, m := range ra.Messages() {
		if m.Event == "none" && (len(m.Data) != 1 || m.Data[0] != 0xc0) {
			t.Errorf("emit without data sent % x, want nil (c0)", m.Data)
		}
	}
}

// TestListen listens from the command line to events a real client
// emits: only the events the pattern names are printed, one line each,
// and Ctrl-C (SIGINT) ends it with status 0.
func TestListen(t *testing.T) {
	ts := newServer(t)
	l := start(t, ts.Template, "listen", "B", "log.*")
	l.waitStderr(t, "listening on B for log.*")
	a := ts.Dial(t, "A")
	a.Emit("other", 1)
	a.Emit("log.x", map[string]any{"a": 1, "s": "t"})
	a.Emit("log", nil)
	line := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} A log\.x ` + a.ID().String()[:8] + ` \{"a":1,"s":"t"\}$`)
	if got := l.line(t); !line.MatchString(got) {
		t.Errorf("line %q does not match %v", got, line)
	}
	if got, want := l.line(t), " A log "+a.ID().String()[:8]+" null"; !strings.HasSuffix(got, want) {
		t.Errorf("line %q, want it to end in %q", got, want)
	}
	// The listen declared its pattern: the server did not send it
	// "other" at all.
	clients, _ := ts.Clients("B")
	if len(clients) != 1 || fmt.Sprint(clients[0].Interest) != "[log.*]" {
		t.Errorf("B's clients %+v, want the listen alone, with interest [log.*]", clients)
	}
	for _, ch := range ts.Channels() {
		if n := ch.Stats.Filtered; ch.Name == "B" && n != 1 {
			t.Errorf("B filtered %d events, want 1 (other)", n)
		}
	}
	l.cmd.Process.Signal(syscall.SIGINT)
	if code := l.exit(t); code != 0 {
		t.Errorf("exit status %d after Ctrl-C, want 0", code)
	}
	if rest := l.drain(); rest != "" {
		t.Errorf("more output: %q", rest)
	}
}

// TestListenJSON: with --json, each event is one JSON object a line.
func TestListenJSON(t *testing.T) {
	ts := newServer(t)
	l := start(t, ts.Template, "listen", "A", "--json")
	l.waitStderr(t, "listening on A")
	a := ts.Dial(t, "A")
	a.Emit("log", []any{1, "two", map[string]any{"three": 3.5}})
	var got struct {
		Time, Channel, Event, ID, Origin, Sender string
		Data                                     []any
	}
	line := l.line(t)
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	if got.Channel != "A" || got.Event != "log" || got.Sender != a.ID().String() || got.Origin != ts.Node().String() ||
		got.Time == "" || got.ID == "" || len(got.Data) != 3 || got.Data[1] != "two" {
		t.Errorf("line %q decoded as %+v", line, got)
	}
	l.cmd.Process.Signal(syscall.SIGINT)
	if code := l.exit(t); code != 0 {
		t.Errorf("exit status %d after Ctrl-C, want 0", code)
	}
}

// TestEmitToListen: what ncclient emits, another ncclient hears.
func TestEmitToListen(t *testing.T) {
	ts := newServer(t)
	l := start(t, ts.Template, "listen", "A")
	l.waitStderr(t, "listening on A")
	must(t, ts.Template, "emit", "A", "hello", `"world"`)
	want := regexp.MustCompile(`^\S+ A hello [0-9a-f]{8} "world"$`)
	if got := l.line(t); !want.MatchString(got) {
		t.Errorf("line %q does not match %v", got, want)
	}
	l.cmd.Process.Signal(syscall.SIGTERM)
	if code := l.exit(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestListenAcrossRestart: a listen whose server shuts down says so,
// reconnects to the server started again on the same sockets, says so
// too, and prints what is emitted there.
func TestListenAcrossRestart(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerIn(t, dir, testChannels)
	l := start(t, ts.Template, "listen", "A")
	l.waitStderr(t, "listening on A")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	l.waitStderr(t, "server gone; reconnecting…")
	ts = routertest.NewServerIn(t, dir, testChannels)
	l.waitStderr(t, "listening again")
	must(t, ts.Template, "emit", "A", "back", `1`)
	if got := l.line(t); !strings.Contains(got, " A back ") {
		t.Errorf("after the restart, listen printed %q, want the event back", got)
	}
	l.cmd.Process.Signal(syscall.SIGTERM)
	if code := l.exit(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if n := strings.Count(l.stderrText(), "server gone"); n != 1 {
		t.Errorf("stderr says %d times that the server is gone, want 1:\n%s", n, l.stderrText())
	}
}

// TestServerUIDFlag: -server-uid lets through a server of that user and
// refuses another, for control requests and channels alike.
func TestServerUIDFlag(t *testing.T) {
	ts := newServer(t)
	must(t, ts.Template, "-server-uid", strconv.Itoa(os.Getuid()), "clientcount", "A")
	for _, args := range [][]string{{"clientcount", "A"}, {"emit", "A", "e"}} {
		r := ncclient(t, ts.Template, "", append([]string{"-server-uid", "4242"}, args...)...)
		if r.code != exitFailed || !strings.Contains(r.stderr, "not of uid 4242") {
			t.Errorf("ncclient -server-uid 4242 %v: exit status %d, stderr %q; want %d and the uids named", args, r.code, r.stderr, exitFailed)
		}
	}
}
