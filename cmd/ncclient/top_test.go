package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// pacedRate is the events a second pace emits.
const pacedRate = 200

// pace emits "tick" events on pub at pacedRate a second, each time
// catching up with the clock, until stop is called; stop returns how
// many it emitted. The count emitted by any time is pacedRate times the
// time since the start, give or take one step of 10ms.
func pace(t *testing.T, pub *bus.Client, payload []byte) (stop func() int64) {
	t.Helper()
	var sent atomic.Int64
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-tk.C:
				for want := int64(now.Sub(start).Seconds() * pacedRate); sent.Load() < want; sent.Add(1) {
					if err := pub.Emit("tick", payload); err != nil {
						t.Errorf("emit: %v", err)
						return
					}
				}
				pub.Flush(context.Background())
			}
		}
	}()
	var once sync.Once
	stop = func() int64 {
		once.Do(func() { close(quit); <-done })
		return sent.Load()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// near reports whether got is within a share tol of want.
func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// TestTopBatchJSON runs top -b --json against a server where one client
// emits at a known pace and one listens, and checks each snapshot: the
// rates against the pace, each rate against the counters it comes from,
// and the clients of the channel asked for.
func TestTopBatchJSON(t *testing.T) {
	ts := newServer(t)
	sub := ts.Dial(t, "A", bus.Name("sub"))
	heard := routertest.Record(t, sub, "tick")
	pub := ts.Dial(t, "A", bus.Name("pub"))
	stop := pace(t, pub, make([]byte, 100))
	// Let the pace settle before the first read.
	routertest.WaitFor(t, "the first events", func() bool { return heard.Count("tick") > pacedRate/4 })

	// Two seconds between reads: a step of the pace delayed by a loaded
	// machine weighs half as much as over one.
	out := must(t, ts.Template, "top", "-b", "-n", "3", "-d", "2", "--json", "A")
	sent := stop()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("top -b -n 3 printed %d lines, want 3:\n%s", len(lines), out)
	}
	var prev *snapshot
	snaps := make([]snapshot, len(lines))
	for i, l := range lines {
		snap := &snaps[i]
		if err := json.Unmarshal([]byte(l), snap); err != nil {
			t.Fatalf("snapshot %d: %v\n%s", i, err, l)
		}
		checkSnapshot(t, i, snap, prev)
		prev = snap
	}
	checkPace(t, snaps)
	// What the server counted is what was sent: no more, no less.
	c := channelOf(t, prev, "A")
	if c.EventsIn > uint64(sent) {
		t.Errorf("channel A counted %d events in, more than the %d sent", c.EventsIn, sent)
	}
}

// channelOf finds a channel in a snapshot.
func channelOf(t *testing.T, snap *snapshot, name string) topChannel {
	t.Helper()
	i := slices.IndexFunc(snap.Channels, func(c topChannel) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("snapshot has no channel %s: %+v", name, snap.Channels)
	}
	return snap.Channels[i]
}

// checkSnapshot checks snapshot i of TestTopBatchJSON, prev being the
// one before it (nil for the first).
func checkSnapshot(t *testing.T, i int, snap, prev *snapshot) {
	t.Helper()
	// -d 2: about two seconds between reads; under load, reads may wait.
	if snap.Interval < 1.9 || snap.Interval > 6 {
		t.Errorf("snapshot %d: interval %.3fs, want about 2s", i, snap.Interval)
	}
	a := channelOf(t, snap, "A")
	if a.Clients != 2 {
		t.Errorf("snapshot %d: channel A has %d clients, want 2 (pub, sub)", i, a.Clients)
	}
	if prev != nil {
		// The rates are the counters' growth over the interval.
		p := channelOf(t, prev, "A")
		if want := float64(a.EventsIn-p.EventsIn) / snap.Interval; !near(a.EventsInRate, want, 1e-9) {
			t.Errorf("snapshot %d: events_in_rate %f, but events_in grew by %d in %.3fs", i, a.EventsInRate, a.EventsIn-p.EventsIn, snap.Interval)
		}
		if want := float64(a.BytesOut-p.BytesOut) / snap.Interval; !near(a.BytesOutRate, want, 1e-9) {
			t.Errorf("snapshot %d: bytes_out_rate %f, but bytes_out grew by %d in %.3fs", i, a.BytesOutRate, a.BytesOut-p.BytesOut, snap.Interval)
		}
	}
	// Every event is the same size: bytes in a second are events in a
	// second times that size.
	if a.EventsIn > 0 {
		per := float64(a.BytesIn) / float64(a.EventsIn)
		if !near(a.BytesInRate, a.EventsInRate*per, 0.05) {
			t.Errorf("snapshot %d: bytes_in_rate %.0f, want %.0f events/s times %.0f bytes", i, a.BytesInRate, a.EventsInRate, per)
		}
	}
	if snap.NATS != nil || snap.NATSRates != nil {
		t.Errorf("snapshot %d: a server without a NATS link shows one: %v, %v", i, snap.NATS, snap.NATSRates)
	}
	checkClients(t, i, snap)
}

// checkClients checks the clients of A in a snapshot: pub sends, sub
// hears, both are this process.
func checkClients(t *testing.T, i int, snap *snapshot) {
	t.Helper()
	if snap.Channel != "A" || len(snap.Clients) != 2 {
		t.Fatalf("snapshot %d: clients of %q: %+v; want pub and sub of A", i, snap.Channel, snap.Clients)
	}
	for _, c := range snap.Clients {
		if c.PID != os.Getpid() {
			t.Errorf("snapshot %d: client %s has pid %d, want this process's, %d", i, c.Name, c.PID, os.Getpid())
		}
		in, out := c.EventsInRate, c.EventsOutRate
		if c.Name == "sub" {
			in, out = out, in
		}
		if c.Name != "pub" && c.Name != "sub" {
			t.Errorf("snapshot %d: client %q, want pub or sub", i, c.Name)
		}
		// One way only; how much, checkPace checks over all snapshots.
		if out > pacedRate*0.05 {
			t.Errorf("snapshot %d: client %s: %.1f events/s in, %.1f out; want events one way, none the other", i, c.Name, c.EventsInRate, c.EventsOutRate)
		}
	}
}

// checkPace checks the rates of TestTopBatchJSON's snapshots against the
// pace, which emits pacedRate a second. A step of the pace that a loaded
// machine delays is caught up in the next, maybe in the next interval:
// over all the snapshots the count is the pace's, whatever one interval
// shows. So each rate is averaged, by time, over all the snapshots. Each
// event is heard by sub alone: as many out as in.
func checkPace(t *testing.T, snaps []snapshot) {
	t.Helper()
	var span float64
	sums := map[string]float64{}
	for i := range snaps {
		snap := &snaps[i]
		span += snap.Interval
		a := channelOf(t, snap, "A")
		sums["channel A events in"] += a.EventsInRate * snap.Interval
		sums["channel A events out"] += a.EventsOutRate * snap.Interval
		// The first snapshot's client rates are over the time between
		// the two answers to showchannel, like the others: about the
		// interval.
		for _, c := range snap.Clients {
			in := c.EventsInRate
			if c.Name == "sub" {
				in = c.EventsOutRate
			}
			sums["client "+c.Name] += in * snap.Interval
		}
	}
	for what, sum := range sums {
		if got := sum / span; !near(got, pacedRate, 0.4) {
			t.Errorf("%s: %.1f events/s over the %d snapshots, want about %d/s", what, got, len(snaps), pacedRate)
		}
	}
}

// TestTopUsage: top's bad flags are usage errors, and the live view
// wants a terminal.
func TestTopUsage(t *testing.T) {
	ts := newServer(t)
	for _, args := range [][]string{
		{"top", "-n", "-1", "-b"},
		{"top", "-b", "-d", "soon"},
		{"top", "-b", "-sort", "colour"},
		{"top", "-b", "A", "B"},
		{"top"}, // stdout is not a terminal
	} {
		if r := ncclient(t, ts.Template, "", args...); r.code != exitUsage || !strings.Contains(r.stderr, "top") {
			t.Errorf("ncclient %q: exit %d, stderr %q; want a usage error (%d) about top", args, r.code, r.stderr, exitUsage)
		}
	}
	// The plain batch mode: a summary and the tables, once.
	out := must(t, ts.Template, "top", "-b", "-n", "1", "-d", "50ms", "A")
	for _, want := range []string{"interval", "CHANNEL", "clients of A", "network: off"} {
		if !strings.Contains(out, want) {
			t.Errorf("top -b -n 1 A: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "nats:") {
		t.Errorf("top -b -n 1 A, on a server without a NATS link, shows one:\n%s", out)
	}
}

// TestTopGlobalFlags: ncclient's own flags after top are checked as
// before it (usage errors), all of them are taken, -h prints the usage,
// and they hold for top alone: in a script, the commands after it keep
// the script's -json and -socket. A channel that does not exist fails
// top -b. (Before, top bound -json, -socket and -timeout to the
// session's settings unchecked, took no -history nor -server-uid, and
// showed a channel that does not exist as none at all.)
func TestTopGlobalFlags(t *testing.T) {
	ts := newServer(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"top", "-b", "-n", "1", "-timeout", "0s"}, exitUsage},
		{[]string{"top", "-b", "-n", "1", "-socket", filepath.Join(t.TempDir(), "no-placeholder")}, exitUsage},
		{[]string{"top", "-h"}, exitOK},
		{[]string{"top", "-b", "-n", "1", "-d", "0.05", "-server-uid", "-1"}, exitOK},
		{[]string{"top", "-b", "-n", "1", "-d", "0.05", "-history", ""}, exitOK},
		{[]string{"top", "-b", "-n", "1", "-d", "0.05", "Nope"}, exitFailed},
	} {
		if r := ncclient(t, ts.Template, "", tc.args...); r.code != tc.want {
			t.Errorf("ncclient %q: exit %d, want %d; stderr %q", tc.args, r.code, tc.want, r.stderr)
		}
	}
	r := ncclient(t, ts.Template, "top -b -n 1 -d 0.05 -json\nloglevel\n")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if last := lines[len(lines)-1]; r.code != 0 || !strings.HasPrefix(last, "level: ") {
		t.Errorf("loglevel after top -json: exit %d, printed %q, not the human form (level: ...)", r.code, last)
	}
	// top on a socket where no server runs fails there, and the script
	// with it: before, it read the server of the script's socket.
	dir := t.TempDir()
	r = ncclient(t, ts.Template, "loglevel\ntop -b -n 1 -d 0.05 -socket "+filepath.Join(dir, "{channel}.sock")+"\nemit A x 1\n")
	if r.code != exitNoServer || !strings.Contains(r.stderr, dir) {
		t.Errorf("top -socket on a path without a server: exit %d, stderr %q; want it to fail there (%d)", r.code, r.stderr, exitNoServer)
	}
}

// TestTopDoc holds docs/top.md to what top prints: every key of a JSON
// snapshot, every sort key, and every flag are named there.
func TestTopDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/top.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(doc, "`"+key+"`") {
				t.Errorf("docs/top.md does not name the JSON key `%s` (%s.%s)", key, typ.Name(), f.Name)
			}
			switch el := f.Type; {
			case el.Kind() == reflect.Slice && el.Elem().Kind() == reflect.Struct:
				walk(el.Elem())
			}
		}
	}
	walk(reflect.TypeFor[snapshot]())
	for _, k := range netRateKeys {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/top.md does not name the network rate `%s`", k)
		}
	}
	for _, k := range natsRateKeys {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/top.md does not name the NATS rate `%s`", k)
		}
	}
	for _, k := range sortKeys {
		if !strings.Contains(doc, "`"+k.name+"`") || !strings.Contains(doc, "`"+string(k.key)+"`") {
			t.Errorf("docs/top.md does not name the sort key `%s` or its key `%c`", k.name, k.key)
		}
	}
	for _, p := range lookup("top").params {
		if !strings.Contains(doc, "| `"+p.name+"` |") {
			t.Errorf("docs/top.md's table of flags has no row for `%s`", p.name)
		}
	}
}
