package main

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
)

// peerPID returns the pid of the process that listens on the Unix
// socket at path, from the kernel's peer credentials.
func peerPID(t *testing.T, path string) int {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		t.Fatal(err)
	}
	if credErr != nil {
		t.Fatal(credErr)
	}
	return int(cred.Pid)
}

// TestServerProcess checks that the default mode's server is another
// process: the kernel says the channels' sockets belong to the child
// ncbench started, not to ncbench, and stopping it ends that process.
func TestServerProcess(t *testing.T) {
	f, err := parseFlags(nil, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := startServerProcess(context.Background(), f, builtNcserver(t))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.stop()
		}
	})
	for _, ch := range []string{f.channel, f.to, f.ping} {
		got := peerPID(t, wire.SocketPath(p.template, ch))
		if got != p.pid() || got == os.Getpid() {
			t.Errorf("channel %s is served by pid %d; ncbench is %d, the server it started %d", ch, got, os.Getpid(), p.pid())
		}
	}
	p.stop()
	stopped = true
	if err := syscall.Kill(p.pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the server process %d is still there after stop: kill 0 gave %v", p.pid(), err)
	}
	if _, err := os.Stat(p.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the server's directory is left behind: %v", err)
	}
}

// TestDefaultRunStartsNcserver runs ncbench as a user would, with no
// flag naming a server: it must build ncserver from this tree, run the
// events through that process, and leave no process behind.
func TestDefaultRunStartsNcserver(t *testing.T) {
	start := time.Now()
	rep := runJSON(t, "-count", "2000", "-sub", "1", "pubsub")
	if !strings.HasPrefix(rep.Server, "process ") || rep.ServerPID == 0 || rep.ServerPID == os.Getpid() {
		t.Errorf("server %q, pid %d; ncbench is %d", rep.Server, rep.ServerPID, os.Getpid())
	}
	if err := syscall.Kill(rep.ServerPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the server process %d outlived the run: kill 0 gave %v", rep.ServerPID, err)
	}
	checkCounts(t, rep, 2000)
	t.Logf("built and ran in %v", time.Since(start))
}
