//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netcluster/netcluster/channel"
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
	// A stopped recorder reads nothing, so the server drops it once
	// maxpending is queued for it. How much comes before that depends on
	// what the kernel's socket buffers take (their size and how the
	// server's writes were batched), so the test floods until the drop.
	rec.cmd.Process.Signal(syscall.SIGSTOP)
	big := bytes.Repeat([]byte{'x'}, 1024)
	sent := 1
	for stat(ts, "A").SlowConsumers == 0 {
		if sent > 8192 {
			t.Fatal("8 MiB emitted and the stopped recorder was not dropped")
		}
		if err := a.Emit("big", big); err != nil {
			t.Fatal(err)
		}
		a.Flush(context.Background())
		sent++
	}
	// All of them routed before another client joins, which would
	// otherwise be dropped too, for the same flood.
	routertest.WaitFor(t, "the flood to be routed", func() bool {
		return stat(ts, "A").EventsIn == uint64(sent)
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
	if len(msgs) == 0 || len(msgs) >= sent {
		t.Fatalf("the finished file has %d messages of the %d sent; want some, not all", len(msgs), sent)
	}
	if string(msgs[0].Data[1:]) != "before the stall" {
		t.Errorf("the finished file begins with %q", msgs[0].Data)
	}
}

// stat returns the counters of the server's channel named name.
func stat(ts *routertest.Server, name string) channel.Stats {
	for _, c := range ts.Channels() {
		if c.Name == name {
			return c.Stats
		}
	}
	return channel.Stats{}
}
