//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestRecordDropped: a recorder that falls maxpending behind on a
// channel whose overflow is "drop" is dropped by the server like any
// slow consumer; it then finishes the file with what it had, and exits
// 1 saying why.
func TestRecordDropped(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 4096, "maxpending": 65536, "channels": {"A": {"overflow": "drop"}}`)
	path := filepath.Join(t.TempDir(), "rec.mcap")
	rec := start(t, ts.Template, "record", "-o", path, "A")
	rec.waitStderr(t, "recording A")
	a := ts.Dial(t, "A")
	a.Emit("first", "before the stall")
	routertest.WaitFor(t, "the first event in the recording", func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Contains(b, []byte("before the stall"))
	})
	// A stopped recorder reads nothing: 200 KiB later, the server drops it.
	rec.cmd.Process.Signal(syscall.SIGSTOP)
	big := bytes.Repeat([]byte{'x'}, 1024)
	for range 200 {
		a.Emit("big", big)
	}
	// All of them routed before another client joins, which would
	// otherwise be dropped too, for the same flood.
	routertest.WaitFor(t, "the flood to be routed", func() bool {
		for _, c := range ts.Channels() {
			if c.Name == "A" {
				return c.Stats.EventsIn == 201
			}
		}
		return false
	})
	r := routertest.Record(t, ts.Dial(t, "A"), ".*")
	routertest.Fence(t, ts, "A", r)
	rec.cmd.Process.Signal(syscall.SIGCONT)
	if code := rec.exit(t); code != exitFailed {
		t.Fatalf("a dropped recorder exited %d, want %d: %s", code, exitFailed, rec.stderrText())
	}
	if !strings.Contains(rec.stderrText(), "slow consumer") {
		t.Errorf("record did not say why it ended: %q", rec.stderrText())
	}
	_, msgs := readRecording(t, path)
	if len(msgs) == 0 || len(msgs) > 201 || string(msgs[0].Data[1:]) != "before the stall" {
		t.Errorf("the finished file has %d messages, the first %q", len(msgs), msgs[0].Data)
	}
}
