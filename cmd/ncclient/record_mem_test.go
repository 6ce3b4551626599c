package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
)

// rssKiB reads a process's resident set size from /proc.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read the recorder's memory from: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// TestRecordMemoryFlat records 1,000,000 events and compares the
// recorder's resident memory after 100,000 and after 950,000: a recorder
// that kept anything per event would grow by far more than the margin.
func TestRecordMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("records 1,000,000 events; not with -short")
	}
	const total, early, late, dataLen = 1_000_000, 100_000, 950_000, 100
	ts := newServer(t)
	path := filepath.Join(t.TempDir(), "big.mcap")
	rec := start(t, ts.Template, "record", "-o", path, "-count", strconv.Itoa(total), "A")
	rec.waitStderr(t, "recording A")
	pub := ts.Dial(t, "A", bus.Name("publisher"))
	data := bus.RawData(append([]byte{0xc4, dataLen - 2}, bytes.Repeat([]byte{'x'}, dataLen-2)...))
	// Every message is the same size, so the file's size says how many
	// the recorder has written (its buffer aside).
	const perMessage = 9 + 22 + dataLen
	written := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			return 0
		}
		return fi.Size() / perMessage
	}
	// waitWritten waits until the recorder has written about n events.
	waitWritten := func(n int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for written() < n-1000 {
			if time.Now().After(deadline) {
				t.Fatalf("the recorder wrote %d of %d events in 2 minutes: %s", written(), n, rec.stderrText())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var rssEarly int64
	for i := range total {
		if err := pub.Emit("e", data); err != nil {
			t.Fatal(err)
		}
		if (i+1)%2_000 == 0 {
			// Keep the recorder within 4,000 events of the publisher,
			// well inside what the server lets a client have pending:
			// this test is about memory, not about keeping up.
			waitWritten(int64(i + 1 - 4_000))
		}
		switch i + 1 {
		case early:
			waitWritten(early)
			rssEarly = rssKiB(t, rec.cmd.Process.Pid)
		case late:
			waitWritten(late)
			rssLate := rssKiB(t, rec.cmd.Process.Pid)
			t.Logf("recorder RSS: %d KiB after %d events, %d KiB after %d", rssEarly, early, rssLate, late)
			if rssLate > rssEarly+16<<10 {
				t.Errorf("the recorder grew from %d KiB to %d KiB between %d and %d events", rssEarly, rssLate, early, late)
			}
		}
	}
	if code := rec.exit(t); code != 0 {
		t.Fatalf("record exited %d: %s", code, rec.stderrText())
	}
	if want := "recorded " + strconv.Itoa(total) + " events"; !strings.Contains(rec.stderrText(), want) {
		t.Errorf("record said %q, want %q", rec.stderrText(), want)
	}
}
