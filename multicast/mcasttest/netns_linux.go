//go:build linux

package mcasttest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Main moves the test binary into a private user and network namespace.
// Outside one, it runs the binary again inside one and exits with its
// status; inside, it sets the loopback interface up for multicast and
// returns. When no namespace can be made it returns, and Need skips.
func Main() {
	switch v := os.Getenv(envMarker); v {
	case "":
	case "inside":
		if err := setupLoopback(); err != nil {
			unavailable = "setting up its loopback interface failed: " + err.Error()
		} else {
			unavailable = ""
		}
		return
	default:
		unavailable = v
		return
	}
	if _, err := exec.LookPath("ip"); err != nil {
		unavailable = "iproute2's ip command is not installed"
		return
	}
	if err := run("unshare", "-rn", "true"); err != nil {
		unavailable = "this system does not let the test create one: " + err.Error()
		return
	}
	cmd := exec.Command("unshare", append([]string{"-rn", "--", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envMarker+"=inside")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcasttest: running the tests in a network namespace: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func setupLoopback() error {
	if err := run("ip", "link", "set", "lo", "up", "multicast", "on"); err != nil {
		return err
	}
	return run("ip", "route", "add", "224.0.0.0/4", "dev", "lo")
}

// Host is a network namespace that stands for one machine: it has an
// interface HostInterface with address Addr, joined to the other hosts
// by a bridge.
type Host struct {
	Addr netip.Addr
	ns   string // the namespace's path in /proc
	fns  chan func()
	done chan struct{}
}

// HostInterface is the name of each host's interface.
const HostInterface = "eth0"

var nextBridge atomic.Int32

// Hosts makes n hosts on one bridge, with addresses 10.77.0.1 and up,
// and removes them when the test ends. It skips the test where that
// cannot be done.
func Hosts(t testing.TB, n int) []*Host {
	t.Helper()
	Need(t)
	k := nextBridge.Add(1)
	br := fmt.Sprintf("ncbr%d", k)
	if err := run("ip", "link", "add", br, "type", "bridge", "mcast_snooping", "0"); err != nil {
		t.Skipf("skipping: cannot make a bridge between test hosts: %v", err)
	}
	t.Cleanup(func() { run("ip", "link", "del", br) })
	if err := run("ip", "link", "set", br, "up"); err != nil {
		t.Fatal(err)
	}
	hosts := make([]*Host, n)
	for i := range hosts {
		h := newHost(t)
		h.Addr = netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)})
		hosts[i] = h
		veth := fmt.Sprintf("nc%dh%d", k, i)
		// Deleting one end of a veth pair deletes both: do it before the
		// namespace goes, which the kernel finishes only later.
		t.Cleanup(func() { run("ip", "link", "del", veth) })
		steps := [][]string{
			{"ip", "link", "add", veth, "type", "veth", "peer", "name", HostInterface, "netns", h.ns},
			{"ip", "link", "set", veth, "master", br, "up"},
			{"nsenter", "--net=" + h.ns, "ip", "link", "set", "lo", "up"},
			{"nsenter", "--net=" + h.ns, "ip", "link", "set", HostInterface, "up", "multicast", "on"},
			{"nsenter", "--net=" + h.ns, "ip", "addr", "add", h.Addr.String() + "/24", "dev", HostInterface},
			{"nsenter", "--net=" + h.ns, "ip", "route", "add", "224.0.0.0/4", "dev", HostInterface},
		}
		for _, s := range steps {
			if err := run(s[0], s[1:]...); err != nil {
				t.Fatalf("making test host %d: %v", i, err)
			}
		}
	}
	return hosts
}

// newHost starts the goroutine that owns a host's namespace: it holds one
// OS thread moved into a new network namespace, runs what Do gives it
// there, and ends with the test, taking the thread and the namespace
// with it.
func newHost(t testing.TB) *Host {
	h := &Host{fns: make(chan func()), done: make(chan struct{})}
	ready := make(chan error)
	go func() {
		defer close(h.done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("unshare: %w", err)
			return
		}
		h.ns = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		ready <- nil
		for fn := range h.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Skipf("skipping: cannot make a network namespace for a test host: %v", err)
	}
	t.Cleanup(func() {
		close(h.fns)
		<-h.done
	})
	return h
}

// Do runs fn inside the host's network namespace and returns when it
// has: sockets fn opens belong to the host. Goroutines fn starts run
// elsewhere, so they must not open sockets of their own.
func (h *Host) Do(fn func()) {
	finished := make(chan struct{})
	h.fns <- func() {
		defer close(finished)
		fn()
	}
	<-finished
}

// Run runs a command inside the host's network namespace, such as nft
// to shape what the host receives, and returns its error with its
// output.
func (h *Host) Run(name string, args ...string) error {
	return run("nsenter", append([]string{"--net=" + h.ns, name}, args...)...)
}
