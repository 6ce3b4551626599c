package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/router/routertest"
)

// record records n events of the known stream's kinds on channel A of ts
// and returns the file.
func recordStream(t *testing.T, ts *routertest.Server, stream []streamEvent, flags ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.mcap")
	args := append([]string{"record", "-o", path, "-count", strconv.Itoa(len(stream))}, flags...)
	rec := start(t, ts.Template, append(args, "A")...)
	rec.waitStderr(t, "recording A")
	emitStream(t, ts.Dial(t, "A"), stream)
	if code := rec.exit(t); code != 0 {
		t.Fatalf("record exited %d: %s", code, rec.stderrText())
	}
	return path
}

// TestRecordSignal: SIGINT and SIGTERM end a recording with status 0 and
// a whole file holding what was heard.
func TestRecordSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ts := newServer(t)
			path := filepath.Join(t.TempDir(), "rec.mcap")
			rec := start(t, ts.Template, "record", "-o", path, "-event", "keep.*", "A", "B")
			rec.waitStderr(t, "recording A, B")
			a := ts.Dial(t, "A")
			for i := range 5 {
				a.Emit("keep", "keep-"+strconv.Itoa(i))
				a.Emit("drop", "drop-"+strconv.Itoa(i))
			}
			// A propagates to B: each kept event is heard twice. The
			// recorder writes its buffer out every second: wait until the
			// last event is in the file, from both channels.
			routertest.WaitFor(t, "the last event in the recording twice", func() bool {
				b, _ := os.ReadFile(path)
				return bytes.Count(b, []byte("keep-4")) == 2
			})
			rec.cmd.Process.Signal(sig)
			if code := rec.exit(t); code != 0 {
				t.Fatalf("record exited %d after %v: %s", code, sig, rec.stderrText())
			}
			f, msgs := readRecording(t, path)
			if len(msgs) != 10 {
				t.Fatalf("the recording has %d messages, want 10 (5 on A, 5 propagated to B)", len(msgs))
			}
			topics := map[string]int{}
			for _, m := range msgs {
				ch := f.Channels[m.ChannelID]
				topics[ch.Topic+" from "+ch.Metadata["emitted_on"]]++
			}
			if topics["A/keep from A"] != 5 || topics["B/keep from A"] != 5 {
				t.Errorf("topics %v, want 5 of A/keep and of B/keep, both emitted on A", topics)
			}
		})
	}
}

// TestRecordDuration: -duration ends a recording by itself.
func TestRecordDuration(t *testing.T) {
	ts := newServer(t)
	path := filepath.Join(t.TempDir(), "rec.mcap")
	r := ncclient(t, ts.Template, "", "record", "-o", path, "-duration", "200ms", "A")
	if r.code != 0 || !strings.Contains(r.stderr, "recorded 0 events") {
		t.Fatalf("record -duration: exit %d, stderr %q", r.code, r.stderr)
	}
	if f, msgs := readRecording(t, path); len(msgs) != 0 || f.Statistics == nil {
		t.Errorf("an empty recording has %d messages, statistics %+v", len(msgs), f.Statistics)
	}
}

// TestRecordToStdout: -o - writes the file to standard output, so that
// it can be piped.
func TestRecordToStdout(t *testing.T) {
	ts := newServer(t)
	r := ncclient(t, ts.Template, "", "record", "-o", "-", "-duration", "100ms", "A")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "\x89MCAP0\r\n") {
		t.Fatalf("record -o -: exit %d, stdout %.20q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestRecordReplayUsage(t *testing.T) {
	ts := newServer(t)
	for _, args := range [][]string{
		{"record"},
		{"record", "-count", "-1", "A"},
		{"record", "-nope", "A"},
		{"replay"},
		{"replay", "a.mcap", "b.mcap"},
		{"replay", "-rate", "0", "a.mcap"},
		{"replay", "-rate", "fast", "a.mcap"},
		{"replay", "-map", "A", "a.mcap"},
		{"replay", "-event", "(", "a.mcap"},
	} {
		if r := ncclient(t, ts.Template, "", args...); r.code != exitUsage {
			t.Errorf("ncclient %q: exit %d, want %d; stderr %q", args, r.code, exitUsage, r.stderr)
		}
	}
	if r := ncclient(t, ts.Template, "", "record", "-h"); r.code != 0 || !strings.Contains(r.stderr, "-duration") {
		t.Errorf("record -h: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := ncclient(t, ts.Template, "", "record", "Z"); r.code != exitFailed || !strings.Contains(r.stderr, "channel Z does not exist") {
		t.Errorf("record Z: exit %d, stderr %q", r.code, r.stderr)
	}
	// A pattern that is not a regular expression fails the request, and
	// leaves no file behind.
	path := filepath.Join(t.TempDir(), "bad.mcap")
	if r := ncclient(t, ts.Template, "", "record", "-o", path, "-event", "(", "A"); r.code != exitFailed || !strings.Contains(r.stderr, "event pattern") {
		t.Errorf("record -event '(': exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a recording that could not start left %s behind (%v)", path, err)
	}
	// Nor does it remove a file that was there before it: run as root,
	// record -o /dev/null removed the device.
	// Nor empties it.
	old := filepath.Join(t.TempDir(), "old.mcap")
	if err := os.WriteFile(old, []byte("an older recording"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ncclient(t, ts.Template, "", "record", "-o", old, "-event", "(", "A"); r.code != exitFailed {
		t.Errorf("record -event '(': exit %d, stderr %q", r.code, r.stderr)
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "an older recording" {
		t.Errorf("a recording that could not start removed or emptied %s, which it had not made: %q, %v", old, b, err)
	}
}

// TestReplayDamaged: a file that is not MCAP, is cut short or has a bad
// CRC is refused with the offset of the fault, and nothing of it reaches
// the channel.
func TestReplayDamaged(t *testing.T) {
	ts := newServer(t)
	stream := knownStream(t)[:4]
	good, err := os.ReadFile(recordStream(t, ts, stream))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[bytes.Index(flipped, []byte("hello"))] = 'j'
	dir := t.TempDir()
	for name, tt := range map[string]struct {
		data []byte
		want string
	}{
		"text":      {[]byte("not a recording\n"), "not an MCAP file at offset 0"},
		"truncated": {good[:len(good)-30], "file is truncated at offset " + strconv.Itoa(len(good)-30)},
		"badcrc":    {flipped, "CRC mismatch at offset"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".mcap")
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			r := routertest.Record(t, ts.Dial(t, "A"), ".*")
			res := ncclient(t, ts.Template, "", "replay", "-rate", "max", path)
			if res.code != exitFailed || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("replay: exit %d, stderr %q; want %d and %q", res.code, res.stderr, exitFailed, tt.want)
			}
			routertest.Fence(t, ts, "A", r)
			if ev := r.Events(); len(ev) != 1 {
				t.Errorf("the channel heard %q from a damaged file", ev[:len(ev)-1])
			}
		})
	}
}

// TestReplayLoopEventRate: -loop starts over until Ctrl-C, -event picks
// events, -rate max sends without waiting.
func TestReplayLoopEventRate(t *testing.T) {
	ts := newServer(t)
	stream := knownStream(t)
	path := recordStream(t, ts, stream)
	blobs := 0
	for _, e := range stream {
		if e.event == "blob" {
			blobs++
		}
	}
	h := listenStamped(t, ts.Dial(t, "B"), ".*")
	rp := start(t, ts.Template, "replay", "-loop", "-rate", "max", "-event", "blob", "-map", "A=B", path)
	got := h.wait(t, 3*blobs)
	rp.cmd.Process.Signal(syscall.SIGINT)
	if code := rp.exit(t); code != 0 {
		t.Fatalf("replay -loop exited %d after Ctrl-C: %s", code, rp.stderrText())
	}
	for i, g := range got {
		if g.event != "blob" {
			t.Fatalf("event %d is %s; -event blob replays blobs only", i, g.event)
		}
	}
	if !strings.Contains(rp.stderrText(), "replayed ") {
		t.Errorf("replay did not say what it replayed: %q", rp.stderrText())
	}
}

// TestMcapCoreReadsRecording has @mcap/core, the MCAP project's reader,
// read recordings, plain and lz4-compressed. internal/mcap's tests
// install it; here it is used when installed.
func TestMcapCoreReadsRecording(t *testing.T) {
	dir := "../../internal/mcap/testdata/mcapcheck"
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@mcap", "core")); err != nil {
		t.Skip("@mcap/core is not installed (npm ci in internal/mcap/testdata/mcapcheck; .ci/run does)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	ts := newServer(t)
	stream := knownStream(t)
	for _, compress := range []string{"none", "lz4"} {
		path, err := filepath.Abs(recordStream(t, ts, stream, "-compress", compress))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("node", "check.mjs", "read", path)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("@mcap/core refuses the recording (-compress %s): %v\n%s", compress, err, out)
		}
		want := len(stream) // read in order
		if compress == "lz4" {
			want *= 2 // and through the indexes
		}
		if n := strings.Count(string(out), `"publishTime"`); n != want {
			t.Errorf("-compress %s: @mcap/core read %d messages, want %d", compress, n, want)
		}
	}
}

// TestReplayLoopNothingToReplay: -loop over a file of which nothing is
// replayed (-event matches none) ends at once and says why; before, it
// went round the file without end, deaf to Ctrl-C and SIGTERM.
func TestReplayLoopNothingToReplay(t *testing.T) {
	ts := newServer(t)
	path := recordStream(t, ts, knownStream(t))
	rp := start(t, ts.Template, "replay", "-loop", "-event", "nomatch", path)
	select {
	case <-rp.done:
	case <-time.After(10 * time.Second):
		rp.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-rp.done:
			t.Fatal("replay -loop with nothing to replay went on until Ctrl-C")
		case <-time.After(5 * time.Second):
			rp.cmd.Process.Kill()
			t.Fatal("replay -loop with nothing to replay did not end, even on Ctrl-C")
		}
	}
	if code := rp.exit(t); code != 0 {
		t.Errorf("exit %d: %s", code, rp.stderrText())
	}
	if !strings.Contains(rp.stderrText(), "holds nothing to replay") {
		t.Errorf("replay did not say why it stopped: %q", rp.stderrText())
	}
}
