package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/mcap"
	"github.com/netcluster/netcluster/router/routertest"
)

// benchData is the data of the benchmarks' events: 100 bytes of bin.
var benchData = bus.RawData(append([]byte{0xc4, 98}, bytes.Repeat([]byte{'x'}, 98)...))

// lockedBuffer is a stderr that a benchmark polls while ncclient writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// BenchmarkRecord: one publisher emits b.N events as fast as it can on a
// channel that ncclient record listens to, 1→1, with nothing pacing it
// but the server's back-pressure (the default overflow "block"). It reports
// the events/s from the first emit until the recorder has written the
// b.N-th event and finished the file, and fails if the recorder lost
// any. Run with a fixed count, e.g. -benchtime 200000x.
func BenchmarkRecord(b *testing.B) {
	ts := routertest.NewServer(b, testChannels)
	path := filepath.Join(b.TempDir(), "bench.mcap")
	var stderr lockedBuffer
	cmd := exec.Command(binary, "-history", "", "-socket", ts.Template, "record", "-o", path, "-count", strconv.Itoa(b.N), "A")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// exited is closed once record has ended, with its error in waitErr.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	routertest.WaitFor(b, "the recorder to start", func() bool { return strings.Contains(stderr.String(), "recording A") })
	pub := ts.Dial(b, "A", bus.Name("publisher"))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := pub.Emit("e", benchData); err != nil {
			b.Fatal(err)
		}
	}
	<-exited
	if waitErr != nil {
		b.Fatalf("record: %v: %s", waitErr, stderr.String())
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if want := "recorded " + strconv.Itoa(b.N) + " events"; !strings.Contains(stderr.String(), want) {
		b.Fatalf("record said %q, want %q", stderr.String(), want)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkReplayMax: ncclient replay -rate max sends a recording of
// b.N events to a channel where one listener counts them. It reports the
// events/s from the start of ncclient until the last event arrived. Run
// with a fixed count, e.g. -benchtime 200000x.
func BenchmarkReplayMax(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.mcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w, err := mcap.NewWriter(f, "bench")
	if err != nil {
		b.Fatal(err)
	}
	id, err := w.AddChannel("A/e", "msgpack", map[string]string{"channel": "A", "event": "e"})
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		t := uint64(i) * 1000
		if err := w.WriteMessage(&mcap.Message{ChannelID: id, Sequence: uint32(i + 1), LogTime: t, PublishTime: t, Data: benchData}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	ts := routertest.NewServer(b, testChannels)
	var got atomic.Int64
	lastAt := make(chan time.Time, 1)
	if _, err := ts.Dial(b, "A", bus.Name("counter")).On("e", func(bus.Message) {
		if got.Add(1) == int64(b.N) {
			lastAt <- time.Now()
		}
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	out, err := exec.Command(binary, "-history", "", "-socket", ts.Template, "replay", "-rate", "max", path).CombinedOutput()
	if err != nil {
		b.Fatalf("replay: %v: %s", err, out)
	}
	select {
	case end := <-lastAt:
		b.StopTimer()
		b.ReportMetric(float64(b.N)/end.Sub(start).Seconds(), "events/s")
	case <-time.After(time.Minute):
		b.Fatalf("the listener counted %d of %d events", got.Load(), b.N)
	}
}
