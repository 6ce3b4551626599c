//go:build unix

package router_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// ncserver built once for the tests and benchmarks that run servers as
// processes of their own, which a signal can stop (SIGSTOP) as a whole:
// its sockets, its goroutines and its timers.
var ncserverBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// ncserverBinary builds cmd/ncserver from this tree, once per test
// binary, and returns its path. removeNcserver, which TestMain calls,
// removes it.
func ncserverBinary(t testing.TB) string {
	t.Helper()
	nb := &ncserverBuild
	nb.once.Do(func() {
		nb.dir, nb.err = os.MkdirTemp("", "ncsrv")
		if nb.err != nil {
			return
		}
		bin := filepath.Join(nb.dir, "ncserver")
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ncserver").CombinedOutput(); err != nil {
			nb.err = fmt.Errorf("building ncserver: %v\n%s", err, out)
			return
		}
		nb.path = bin
	})
	if nb.err != nil {
		t.Fatal(nb.err)
	}
	return nb.path
}

// removeNcserver removes the binary ncserverBinary built, if any.
func removeNcserver() {
	if d := ncserverBuild.dir; d != "" {
		os.RemoveAll(d)
	}
}

// ncproc is an ncserver process started by the test, inside the test's
// network namespace (the process inherits it), with its log kept.
type ncproc struct {
	cmd      *exec.Cmd
	log      *routertest.LogBuffer
	done     chan struct{}
	template string
	ctl      *bus.Client
}

// startNcserver runs ncserver on a configuration of the given HuJSON
// object members, its sockets in a fresh directory, and waits until its
// control channel answers. The process is stopped (SIGTERM, then
// SIGKILL) when the test ends, resumed first if it was stopped. flags
// go to ncserver after its default ones ("-log-level info").
func startNcserver(t testing.TB, members string, flags ...string) *ncproc {
	t.Helper()
	mcasttest.Need(t)
	bin := ncserverBinary(t)
	dir := routertest.ShortTempDir(t)
	p := &ncproc{log: &routertest.LogBuffer{}, done: make(chan struct{}), template: filepath.Join(dir, "{channel}.sock")}
	conf := filepath.Join(dir, "nc.json")
	text := fmt.Sprintf("{\n\"socket\": %q,\n%s\n}", p.template, members)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-log-level", "info"}, flags...)
	if d := os.Getenv("NCSERVER_CPUPROFILE_DIR"); d != "" {
		// Profiling the servers of a test or benchmark: one file each,
		// written when the server stops.
		args = append(args, "-cpuprofile", filepath.Join(d, fmt.Sprintf("ncserver-%s.pprof", filepath.Base(dir))))
	}
	p.cmd = exec.Command(bin, append(args, conf)...)
	p.cmd.Stderr = p.log
	if g := os.Getenv("NCSERVER_GOGC"); g != "" {
		// The servers' garbage collector alone, for measuring its part
		// (docs/benchmarks.md); the test's own process keeps its GOGC.
		p.cmd.Env = append(os.Environ(), "GOGC="+g)
	}
	// Should the test binary die, its servers die with it (Linux).
	p.cmd.SysProcAttr = dieWithParent()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting ncserver: %v", err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("ncserver %d did not stop on SIGTERM", p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("ncserver %d log:\n%s", p.cmd.Process.Pid, p.log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := bus.Dial(ctx, "control", bus.SocketTemplate(p.template))
		cancel()
		if err == nil {
			t.Cleanup(func() { c.Close() })
			p.ctl = c
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("ncserver exited: %v\n%s", p.cmd.ProcessState, p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ncserver's control channel never answered: %v\n%s", err, p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid is the server's process id.
func (p *ncproc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the server's process.
func (p *ncproc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to ncserver %d: %v", sig, p.pid(), err)
	}
}

// dial connects a client of the server's channel, closed when the test
// ends.
func (p *ncproc) dial(t testing.TB, channel string, opts ...bus.Option) *bus.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bus.Dial(ctx, channel, append([]bus.Option{bus.SocketTemplate(p.template)}, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", channel, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// procStats is what the tests read of the control request stats.
type procStats struct {
	Network struct {
		Delivered     uint64 `msgpack:"delivered"`
		SendFailed    uint64 `msgpack:"send_failed"`
		Lost          uint64 `msgpack:"lost"`
		FlowHeld      uint64 `msgpack:"flow_held"`
		FlowHeldMs    uint64 `msgpack:"flow_held_ms"`
		FlowExcluded  uint64 `msgpack:"flow_excluded"`
		FlowReceivers int    `msgpack:"flow_receivers"`
		Window        int    `msgpack:"window"`
	} `msgpack:"network"`
	Channels map[string]struct {
		SlowConsumers uint64 `msgpack:"slow_consumers"`
	} `msgpack:"channels"`
	NATS struct {
		DroppedIn uint64 `msgpack:"dropped_in"`
		FlowHeld  uint64 `msgpack:"flow_held"`
		EventsOut uint64 `msgpack:"events_out"`
		MsgsOut   uint64 `msgpack:"msgs_out"`
		MissedIn  uint64 `msgpack:"missed_in"`
		Connected bool   `msgpack:"connected"`
	} `msgpack:"nats"`
}

// stats asks the server for its counters over its control channel.
func (p *ncproc) stats(t testing.TB) procStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := p.ctl.Request(ctx, router.ControlPrefix+"stats", nil)
	if err != nil {
		t.Fatalf("control request stats to ncserver %d: %v", p.pid(), err)
	}
	var st procStats
	if err := reply.Decode(&st); err != nil {
		t.Fatalf("stats of ncserver %d: %v", p.pid(), err)
	}
	return st
}
