package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ncbench-test")
	if err != nil {
		panic(err)
	}
	ncserverDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// ncserverDir holds the ncserver binary the tests build once.
var (
	ncserverDir   string
	ncserverOnce  sync.Once
	ncserverBuilt string
	ncserverErr   error
)

// builtNcserver builds ncserver from this tree once for all tests and
// returns its path.
func builtNcserver(t testing.TB) string {
	t.Helper()
	ncserverOnce.Do(func() {
		bin := filepath.Join(ncserverDir, "ncserver")
		if out, err := exec.Command("go", "build", "-o", bin, "../ncserver").CombinedOutput(); err != nil {
			ncserverErr = fmt.Errorf("building ncserver: %v\n%s", err, out)
			return
		}
		ncserverBuilt = bin
	})
	if ncserverErr != nil {
		t.Fatal(ncserverErr)
	}
	return ncserverBuilt
}

// withNcserver prepends -ncserver and the binary built for the tests to
// args, so that a run against a separate process does not build one of
// its own.
func withNcserver(t testing.TB, args ...string) []string {
	return append([]string{"-ncserver", builtNcserver(t)}, args...)
}

func TestSeqCounter(t *testing.T) {
	tests := []struct {
		name                string
		seqs                []uint64
		sent                uint64
		ok, lost, reordered uint64
		doubled             uint64
	}{
		{"in order", []uint64{0, 1, 2, 3}, 4, 4, 0, 0, 0},
		{"gap", []uint64{0, 1, 4, 5}, 6, 4, 2, 0, 0},
		{"late one", []uint64{0, 2, 1, 3}, 4, 3, 1, 1, 0},
		{"duplicate", []uint64{0, 1, 1, 2}, 3, 3, 0, 1, 1},
		{"tail missing", []uint64{0, 1}, 5, 2, 3, 0, 0},
		{"nothing", nil, 3, 0, 3, 0, 0},
		{"late ones inside a gap, one twice", []uint64{0, 6, 3, 1, 5, 3, 2, 7}, 8, 3, 5, 5, 1},
		{"late ones of two gaps", []uint64{0, 3, 4, 7, 1, 5, 2, 6, 0}, 8, 4, 4, 5, 1},
		{"replay after a gap", []uint64{0, 1, 2, 5, 6, 0, 1, 2, 3, 4}, 7, 5, 2, 5, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s seqCounter
			for _, q := range tt.seqs {
				s.see(q)
			}
			s.finish(tt.sent)
			if s.ok != tt.ok || s.lost != tt.lost || s.reordered != tt.reordered || s.doubled != tt.doubled {
				t.Errorf("ok, lost, reordered, doubled = %d, %d, %d, %d; want %d, %d, %d, %d",
					s.ok, s.lost, s.reordered, s.doubled, tt.ok, tt.lost, tt.reordered, tt.doubled)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	for _, size := range []int{minSize, 128, 255, 256, 70000} {
		p, off := newPayload(size)
		fillPayload(p[off:], 3, 123456789)
		pub, seq, ok := parsePayload(p, size)
		if !ok || pub != 3 || seq != 123456789 {
			t.Errorf("size %d: parsed %d, %d, %v", size, pub, seq, ok)
		}
		for _, at := range []int{0, off + payloadHead, len(p) - 1} {
			bad := bytes.Clone(p)
			bad[at]++
			if _, _, ok := parsePayload(bad, size); ok {
				t.Errorf("size %d: a changed byte at %d went unnoticed", size, at)
			}
		}
		if _, _, ok := parsePayload(p[:len(p)-1], size); ok {
			t.Errorf("size %d: a short payload went unnoticed", size)
		}
	}
}

// runJSON runs ncbench with args and decodes its JSON report.
func runJSON(t *testing.T, args ...string) *Report {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"-json", "-progress", "0"}, args...)
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("ncbench %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, &stdout, &stderr)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, &stdout)
	}
	return &rep
}

// checkCounts checks that every event of every throughput run arrived
// intact and in order.
func checkCounts(t *testing.T, rep *Report, perPub uint64) {
	t.Helper()
	hasRaw := false
	for _, r := range rep.Runs {
		hasRaw = hasRaw || r.Name == "raw"
	}
	for _, r := range rep.Runs {
		if r.Latency != nil {
			if r.Delivered != r.Sent || r.Lost+r.Reordered+r.Corrupt != 0 {
				t.Errorf("%s: %d of %d round trips, lost %d, reordered %d, corrupt %d", r.Name, r.Delivered, r.Sent, r.Lost, r.Reordered, r.Corrupt)
			}
			continue
		}
		want := perPub * uint64(r.Publishers)
		if r.Name == "raw" {
			want = perPub * uint64(rep.Runs[0].Publishers) // as many as the publishers of the other runs
		}
		if r.Name != "stream-beside-latency" && r.Sent != want {
			t.Errorf("%s: sent %d, want %d", r.Name, r.Sent, want)
		}
		if !r.Honest() || r.Delivered == 0 {
			t.Errorf("%s with %d subscribers: sent %d, delivered %d, lost %d, reordered %d, corrupt %d, errors %q",
				r.Name, r.Subscribers, r.Sent, r.Delivered, r.Lost, r.Reordered, r.Corrupt, r.Errors)
		}
		if hasRaw != (r.Name == "raw" || r.RawRatio > 0) {
			t.Errorf("%s: raw ratio %v, with a raw run: %v", r.Name, r.RawRatio, hasRaw)
		}
	}
}

func TestInProcess(t *testing.T) {
	rep := runJSON(t, "-inprocess", "-count", "3000", "-pings", "100", "-pub", "2", "-sub", "1,3", "-window", "500")
	names := map[string]int{}
	for _, r := range rep.Runs {
		names[r.Name]++
	}
	want := map[string]int{"pubsub": 2, "propagated": 2, "latency-idle": 1, "latency-beside-stream": 1, "stream-beside-latency": 1, "raw": 1}
	for n, c := range want {
		if names[n] != c {
			t.Errorf("%d runs named %s, want %d (runs: %v)", names[n], n, c, names)
		}
	}
	checkCounts(t, rep, 3000)
	if rep.Server != "in-process" || rep.ServerPID != os.Getpid() || rep.Machine.CPUs < 1 {
		t.Errorf("server %q, machine %+v", rep.Server, rep.Machine)
	}
}

func TestNoFlowControl(t *testing.T) {
	// Without a window nothing stops the publisher, but 2000 events fit
	// every queue on the way, so all of them must arrive.
	rep := runJSON(t, withNcserver(t, "-count", "2000", "-window", "0", "-sub", "2", "pubsub")...)
	checkCounts(t, rep, 2000)
}

func TestRunningServer(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"X": {"propagatetochannels": "Y"}, "Y": {}}`)
	// The window keeps the stream beside the latency run within the
	// server's maxpending (see TestTextReport).
	rep := runJSON(t, "-socket", ts.Template, "-channel", "X", "-to", "Y", "-ping", "Y",
		"-count", "2000", "-pings", "50", "-sub", "2", "-window", "8192", "pubsub", "propagated", "latency")
	if rep.Server != ts.Template {
		t.Errorf("server %q, want %q", rep.Server, ts.Template)
	}
	for _, r := range rep.Runs {
		if r.Name == "propagated" && r.SubChannel != "Y" {
			t.Errorf("propagated run listened on %q", r.SubChannel)
		}
	}
	checkCounts(t, rep, 2000)
}

func TestTextReport(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// A window keeps the stream beside the latency run within the
	// server's maxpending: without one, a full-speed stream may lose
	// events to a subscriber dropped as a slow consumer.
	code := run(context.Background(), withNcserver(t, "-count", "1000", "-pings", "20", "-sub", "1", "-window", "8192", "-progress", "1ns"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, &stdout, &stderr)
	}
	for _, want := range []string{"events/s", "of raw", "latency-idle", "p99.9", "latency-beside-stream"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &stdout)
		}
	}
	if !strings.Contains(stderr.String(), "delivered") {
		t.Errorf("no progress lines on stderr:\n%s", &stderr)
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-size", "5"}, "-size 5"},
		{[]string{"-sub", "1,0"}, "-sub"},
		{[]string{"-pub", "0"}, "-pub 0"},
		{[]string{"-count", "0"}, "-duration"},
		{[]string{"-socket", "/tmp/x.sock"}, "{channel}"},
		{[]string{"-channel", "a/b"}, "invalid channel name"},
		{[]string{"fast"}, `unknown run "fast"`},
		{[]string{"-nosuchflag"}, "not defined"},
		{[]string{"-inprocess", "-socket", "/tmp/{channel}.sock"}, "exclude each other"},
		{[]string{"-work", "-1s"}, "-work -1s"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, &stderr)
			}
		})
	}
}

func TestMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the mem run reads /proc")
	}
	bin := builtNcserver(t)
	rep := runJSON(t, "-ncserver", bin, "-clients", "200", "mem")
	m := rep.Memory
	if m == nil {
		t.Fatal("no memory figures")
	}
	if m.IdleRSS == 0 || m.IdleAnon == 0 || m.IdleAnon > m.IdleRSS || m.Clients != 200 || m.ClientsRSS == 0 || m.SlowBaseRSS == 0 || len(m.Errors) != 0 {
		t.Errorf("memory figures: %+v", m)
	}
	checkRetention(t, m.Retention)
	if !m.SlowDropped {
		t.Errorf("the client that never read was not dropped after %d bytes (maxpending %d)", m.SlowEmitted, m.MaxPending)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
}

// checkRetention checks what the mem run found of the ring of retained
// events: filled past its bound, it holds some events, no more than
// retainbytes, and every event emitted reached the subscriber.
func checkRetention(t *testing.T, r *Retention) {
	t.Helper()
	switch {
	case r == nil:
		t.Fatal("no figures of the retained events")
	case r.Retained <= 0 || r.Bytes <= 0:
		t.Errorf("the server retained %d events, %d bytes: the ring kept nothing", r.Retained, r.Bytes)
	case r.Bytes > r.RetainBytes:
		t.Errorf("retained_bytes %d is over retainbytes %d", r.Bytes, r.RetainBytes)
	case r.Evicted == 0 || uint64(r.Retained)+r.Evicted != r.Emitted:
		t.Errorf("%d events emitted, %d retained, %d evicted: the ring was not filled past its bound, or lost count", r.Emitted, r.Retained, r.Evicted)
	}
	if r.Received != r.Emitted {
		t.Errorf("the subscriber received %d of %d events", r.Received, r.Emitted)
	}
	if r.BaseRSS == 0 || r.RSS == 0 || r.Growth > rssBound*uint64(r.RetainBytes) {
		t.Errorf("RSS %d before the events, %d after: over %d times retainbytes", r.BaseRSS, r.RSS, rssBound)
	}
}

func TestWork(t *testing.T) {
	// 2000 events at 200µs of listener work each take at least 0.4s,
	// however fast everything else is. A window keeps the slow
	// subscriber within the server's maxpending.
	rep := runJSON(t, withNcserver(t, "-count", "2000", "-sub", "1", "-work", "200us", "-window", "8192", "pubsub")...)
	checkCounts(t, rep, 2000)
	r := rep.Runs[0]
	if r.Work != 200*time.Microsecond || r.Seconds < 0.4 {
		t.Errorf("work %v, %d events in %.3fs: the listener did not spend its time", r.Work, r.Delivered, r.Seconds)
	}
}

func TestWindowAfterLoss(t *testing.T) {
	// A server that holds 64 KiB for a subscriber (and frames up to as
	// much) drops one that reads nothing; it reconnects and has lost
	// events. The window must then go by how far the subscriber got,
	// not by what it received, or the publisher waits for events that
	// will never come and gives up with "no subscriber progress".
	// Overflow "drop", so that the server drops the slow subscriber rather
	// than holding the publisher back.
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 65536, "retainbytes": 0, "channels": {"A": {"overflow": "drop"}, "B": {}, "C": {}}`)
	// The subscriber's first connection goes through stallingProxy: it
	// stops reading as the publisher connects, so the drop does not
	// depend on how the machine's load paces publisher and listener.
	template := stallingProxy(t, ts, "A")
	var stdout, stderr bytes.Buffer
	args := []string{"-json", "-progress", "0", "-socket", template, "-count", "20000", "-sub", "1",
		"-window", "8192", "pubsub"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 && code != 3 {
		t.Fatalf("exit %d\n%s\n%s", code, &stdout, &stderr)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, &stdout)
	}
	r := rep.Runs[0]
	if r.Disconnects == 0 || r.Lost == 0 {
		t.Fatalf("the subscriber was never dropped (%d disconnects, lost %d): the test proves nothing", r.Disconnects, r.Lost)
	}
	if r.Sent != 20000 || slices.ContainsFunc(r.Errors, func(e string) bool { return strings.Contains(e, "no subscriber progress") }) {
		t.Errorf("the publisher sent %d of 20000; errors %q", r.Sent, r.Errors)
	}
	if r.Delivered+r.Lost != r.Sent {
		t.Errorf("delivered %d + lost %d != sent %d", r.Delivered, r.Lost, r.Sent)
	}
}

// stallingProxy serves channel of ts through a socket of its own, and
// returns the template of that socket. Of the first connection, the
// subscriber's, it stops passing on what the server writes once a
// second client (the publisher) connects, until the server has dropped
// a slow consumer of channel; then it passes on the rest, and the
// server's close. Other connections it passes on as they are.
func stallingProxy(t *testing.T, ts *routertest.Server, channel string) string {
	t.Helper()
	template := filepath.Join(routertest.ShortTempDir(t), "{channel}.sock")
	ln, err := net.Listen("unix", strings.ReplaceAll(template, "{channel}", channel))
	if err != nil {
		t.Fatal(err)
	}
	dropped := func() bool {
		for _, c := range ts.Channels() {
			if c.Name == channel && c.Stats.SlowConsumers > 0 {
				return true
			}
		}
		return false
	}
	stall := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if n == 1 {
				close(stall)
			}
			srv, err := net.Dial("unix", ts.Path(channel))
			if err != nil {
				nc.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(srv, nc)
				srv.Close()
			}()
			go func() {
				defer wg.Done()
				defer nc.Close()
				if n > 0 {
					io.Copy(nc, srv)
					return
				}
				buf := make([]byte, 32<<10)
				for {
					select {
					case <-stall:
						// Reads nothing until the server drops the client,
						// for at most 30s: then the test finds no drop.
						for deadline := time.Now().Add(30 * time.Second); !dropped() && time.Now().Before(deadline); {
							time.Sleep(time.Millisecond)
						}
						io.Copy(nc, srv)
						return
					default:
					}
					k, err := srv.Read(buf)
					if _, werr := nc.Write(buf[:k]); err != nil || werr != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return template
}

func TestEffectiveWindow(t *testing.T) {
	tests := []struct {
		window     uint64
		pubs, size int
		want       uint64
	}{
		{8192, 1, 128, 8192},
		{8192, 4, 128, 5041},
		{8192, 1, 70000, 59},
		{8192, 1, 16 << 20, 2},
		{0, 4, 128, 0},
	}
	for _, tt := range tests {
		if got := effectiveWindow(tt.window, tt.pubs, tt.size); got != tt.want {
			t.Errorf("effectiveWindow(%d, %d, %d) = %d, want %d", tt.window, tt.pubs, tt.size, got, tt.want)
		}
	}
}

func TestLargeEvents(t *testing.T) {
	// 300 events of 40 KB with a window: flow control must keep the
	// subscribers within the server's maxpending.
	rep := runJSON(t, withNcserver(t, "-size", "40000", "-count", "300", "-sub", "2", "-window", "8192", "pubsub", "raw")...)
	checkCounts(t, rep, 300)
}

// TestInterestRun runs the interest run against an ncserver process:
// every event reaches the one subscriber that listens to its name, in
// both passes; with interest declared the server writes each event once
// and counts the rest as filtered, and receiving all it writes each
// event to every subscriber.
func TestInterestRun(t *testing.T) {
	const names, count = 8, 4000
	rep := runJSON(t, withNcserver(t, "-count", fmt.Sprint(count), "-names", fmt.Sprint(names), "interest")...)
	runs := map[string]Result{}
	for _, r := range rep.Runs {
		runs[r.Name] = r
	}
	on, all := runs["interest"], runs["interest-all"]
	for _, r := range []Result{on, all} {
		if r.Sent != count || r.Delivered != count || r.Lost+r.Reordered+r.Corrupt != 0 || len(r.Errors) != 0 {
			t.Errorf("%s: %d of %d delivered, lost %d, reordered %d, corrupt %d, errors %q", r.Name, r.Delivered, r.Sent, r.Lost, r.Reordered, r.Corrupt, r.Errors)
		}
	}
	if on.Filtered != count*(names-1) || all.Filtered != 0 {
		t.Errorf("filtered: %d declared, %d receiving all; want %d and 0", on.Filtered, all.Filtered, count*(names-1))
	}
	// Receiving all, the server writes each event to all names
	// subscribers; declared, to one.
	if on.ServerBytesPerEvent == 0 || all.ServerBytesPerEvent < float64(names-1)*on.ServerBytesPerEvent {
		t.Errorf("server bytes per event: %.0f declared, %.0f receiving all; want about %d times fewer declared", on.ServerBytesPerEvent, all.ServerBytesPerEvent, names)
	}
}
