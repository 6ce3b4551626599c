//go:build unix

package router_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// BenchmarkNATSBridgeProcs is BenchmarkNATSBridge with every server a
// process of its own, as deployed: two ncservers and a nats-server
// (built from the nats-server module this module requires). The clients,
// the bridge's and nats.go's alike, run in the benchmark's process; the
// measures share one NATS server, in one run. It runs inside the
// tests' private network namespace, as the other process tests do.
func BenchmarkNATSBridgeProcs(b *testing.B) {
	const size = 128
	mcasttest.Need(b)
	url, natsPID := startNATSProc(b)
	// The "jetstream" runs bridge the channel through a stream, on a
	// nats-server of their own with JetStream (file storage in a
	// temporary directory), started for the first of them; each run
	// has a durable consumer of its own.
	js := jsRuns{start: func() (string, int) { return startNATSProc(b, "-js", "-sd", b.TempDir()) }}
	bridge := func(extra string, jetstream bool) func(*testing.B) {
		if n := os.Getenv("NCBENCH_NATS_PENDINGMSGS"); n != "" {
			// Both servers' nats.pendingmsgs, for measuring what it
			// costs and saves (docs/benchmarks.md).
			extra = strings.TrimPrefix(extra+`, "pendingmsgs": `+n, ", ")
		}
		return func(b *testing.B) {
			url, natsPID, extra := js.pick(url, natsPID, extra, jetstream)
			s1 := startNcserver(b, natsMembers(url, extra, `"channels": {"A": {"propagatetonats": true}}`))
			s2 := startNcserver(b, natsMembers(url, extra, `"channels": {"A": {"acceptfromnats": true}}`))
			before, sent := s2.stats(b).NATS.DroppedIn, s1.stats(b).NATS
			benchBridge(b, size, s1.dial(b, "A"), s2.dial(b, "A"),
				cpuOf(map[string]int{"nats-server": natsPID, "sender": s1.cmd.Process.Pid, "receiver": s2.cmd.Process.Pid}))
			// How many events the sending server put in a NATS message.
			if out := s1.stats(b).NATS; out.MsgsOut > sent.MsgsOut {
				b.ReportMetric(float64(out.EventsOut-sent.EventsOut)/float64(out.MsgsOut-sent.MsgsOut), "events/msg")
			}
			// Where the receiving server counted what it lost: NATS
			// messages (events, or packs) past its pending limits.
			b.ReportMetric(float64(s2.stats(b).NATS.DroppedIn-before), "dropped_in")
			// How often flow control held the sending server back.
			b.ReportMetric(float64(s1.stats(b).NATS.FlowHeld), "flow_held")
			// The most memory each server held at once.
			for name, pid := range map[string]int{"sender": s1.cmd.Process.Pid, "receiver": s2.cmd.Process.Pid} {
				if peak, ok := peakRSS(pid); ok {
					b.ReportMetric(float64(peak)/(1<<20), name+"-peak-MiB")
				}
			}
		}
	}
	b.Run("bridge-128B", bridge("", false))
	b.Run("bridge-packed-128B", bridge(`"pack": true`, false))
	b.Run("bridge-jetstream-128B", bridge("", true))
	b.Run("bridge-jetstream-packed-128B", bridge(`"pack": true`, true))
	b.Run("nats-128B", func(b *testing.B) { benchRawNATS(b, url, size, false, cpuOf(map[string]int{"nats-server": natsPID})) })
	b.Run("nats-headers-128B", func(b *testing.B) { benchRawNATS(b, url, size, true, cpuOf(map[string]int{"nats-server": natsPID})) })
	b.Run(fmt.Sprintf("relay-floor-%dB", benchFrameLen(size)), func(b *testing.B) { benchRelayFloor(b, url, benchFrameLen(size)) })
}

// benchFrameLen is the length, prefix included, of the Event frame of
// one of benchBridge's events of size bytes of data.
func benchFrameLen(size int) int {
	data := append(binary.BigEndian.AppendUint32([]byte{0xc6}, uint32(size)), make([]byte, size)...)
	return len(wire.AppendEvent(nil, &wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(),
		Channel: "A", Event: "bench", Data: data}))
}

// benchRelayFloor runs the bridge's path with two processes that only
// move bytes (router/testdata/relay) in place of the ncservers: a
// client writes b.N records of frame bytes to one, as fast as its
// socket takes them, through 64 KiB of buffer, which publishes what it
// reads to NATS in messages of up to 64 KiB; the other writes what NATS
// brings to a reader in the benchmark's process. Nothing is parsed,
// checked, kept or counted on the way: it is the floor of what two
// bridge processes cost on the machine, not a bridge.
func benchRelayFloor(b *testing.B, url string, frame int) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "relay")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/relay").CombinedOutput(); err != nil {
		b.Fatalf("building the relay: %v\n%s", err, out)
	}
	subject := "floor." + uuid.NewString()
	start := func(mode string) net.Conn {
		sock := filepath.Join(dir, mode+".sock")
		log := &routertest.LogBuffer{}
		cmd := exec.Command(bin, mode, url, sock, subject)
		cmd.Stderr, cmd.SysProcAttr = log, dieWithParent()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			c, err := net.Dial("unix", sock)
			if err == nil {
				b.Cleanup(func() { c.Close() })
				return c
			}
			if time.Now().After(deadline) {
				b.Fatalf("the relay (%s) never listened: %v\n%s", mode, err, log)
			}
		}
	}
	out := start("out")
	if _, err := io.ReadFull(out, make([]byte, 1)); err != nil {
		b.Fatalf("the relay (out) never subscribed: %v", err)
	}
	in := start("in")
	want := int64(b.N) * int64(frame)
	var got atomic.Int64
	done := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for got.Load() < want {
			n, err := out.Read(buf)
			got.Add(int64(n))
			if err != nil {
				break
			}
		}
		done <- time.Now()
	}()
	b.ResetTimer()
	began := time.Now()
	w := bufio.NewWriterSize(in, 64<<10)
	record := make([]byte, frame)
	for range b.N {
		if _, err := w.Write(record); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	var end time.Time
	for last := int64(-1); end.IsZero(); {
		select {
		case end = <-done:
		case <-time.After(2 * time.Second):
			if n := got.Load(); n == last {
				out.Close() // nothing for 2 s: the rest is lost
			} else {
				last = n
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(got.Load()/int64(frame))/end.Sub(began).Seconds(), "events/s")
	b.ReportMetric(float64(want-got.Load())/float64(frame), "lost")
}

// natsServerBinary builds nats-server from the module's dependency into
// a directory removed when the test ends, and returns its path. Go's
// build cache makes the builds after the first one a link.
func natsServerBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("building nats-server: %v\n%s", err, out)
	}
	return bin
}

// startNATSProc runs nats-server as a process on a free loopback port,
// stopped when the test ends, and returns its URL once it answers.
func startNATSProc(t testing.TB, args ...string) (url string, pid int) {
	t.Helper()
	port := freePort(t)
	log := &routertest.LogBuffer{}
	cmd := exec.Command(natsServerBinary(t), append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	cmd.Stderr = log
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nats-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	url = fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		nc, err := nats.Connect(url)
		if err == nil {
			nc.Close()
			return url, cmd.Process.Pid
		}
		select {
		case <-done:
			t.Fatalf("nats-server exited: %v\n%s", cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server never answered: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuOf measures the CPU time of the benchmark's own process, where its
// clients run ("clients"), and of the processes pids, by name: the
// servers the clients go through. It reads /proc, so it tells nothing
// where there is none.
func cpuOf(pids map[string]int) cpuMeter {
	return func() (map[string]time.Duration, bool) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return nil, false
		}
		used := map[string]time.Duration{"clients": time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
		for name, pid := range pids {
			d, ok := procCPU(pid)
			if !ok {
				return nil, false
			}
			used[name] = d
		}
		return used, true
	}
}

// procCPU returns the user and system time of process pid, all its
// threads, from /proc/<pid>/stat (in clock ticks of 1/100 s, what Linux
// gives user space).
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted from 3 (the state) start after its last ')'.
	at := bytes.LastIndexByte(b, ')')
	if at < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[at+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * (time.Second / 100), true
}

// peakRSS returns the most resident memory process pid has held, in
// bytes (VmHWM in /proc/<pid>/status).
func peakRSS(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
