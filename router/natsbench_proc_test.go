//go:build unix

package router_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
	url := startNATSProc(b)
	bridge := func(extra string) func(*testing.B) {
		return func(b *testing.B) {
			s1 := startNcserver(b, natsMembers(url, extra, `"channels": {"A": {"propagatetonats": true}}`))
			s2 := startNcserver(b, natsMembers(url, extra, `"channels": {"A": {"acceptfromnats": true}}`))
			before := s2.stats(b).NATS.DroppedIn
			benchBridge(b, size, s1.dial(b, "A"), s2.dial(b, "A"))
			// Where the receiving server counted what it lost: NATS
			// messages (events, or packs) past its pending limits.
			b.ReportMetric(float64(s2.stats(b).NATS.DroppedIn-before), "dropped_in")
		}
	}
	b.Run("bridge-128B", bridge(""))
	b.Run("bridge-packed-128B", bridge(`"pack": true`))
	b.Run("nats-128B", func(b *testing.B) { benchRawNATS(b, url, size, false) })
	b.Run("nats-headers-128B", func(b *testing.B) { benchRawNATS(b, url, size, true) })
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
func startNATSProc(t testing.TB) string {
	t.Helper()
	port := freePort(t)
	log := &routertest.LogBuffer{}
	cmd := exec.Command(natsServerBinary(t), "-a", "127.0.0.1", "-p", strconv.Itoa(port))
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
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		nc, err := nats.Connect(url)
		if err == nil {
			nc.Close()
			return url
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
