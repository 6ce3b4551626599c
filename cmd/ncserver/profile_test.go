package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestProfiles runs ncserver with -cpuprofile and -memprofile, sends it
// events and stops it: both files hold a profile (gzip-compressed
// protocol buffers, as go tool pprof reads them).
func TestProfiles(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	p := start(t, rt, "-cpuprofile", cpu, "-memprofile", mem)
	waitForLog(t, p, "channel=control socket=")
	c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock")))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := c.Emit("tick", i); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	for _, f := range []string{cpu, mem} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %d bytes, not a gzip-compressed profile", filepath.Base(f), len(b))
		}
	}
}

func TestProfileBadPath(t *testing.T) {
	for _, flag := range []string{"-cpuprofile", "-memprofile"} {
		t.Run(flag, func(t *testing.T) {
			rt := routertest.ShortTempDir(t)
			p := start(t, rt, flag, filepath.Join(t.TempDir(), "no", "such", "dir", "x.pprof"))
			if code := p.exit(t); code != exitUsage {
				t.Errorf("exit status %d, want %d", code, exitUsage)
			}
			if !strings.Contains(p.stderr.String(), flag) {
				t.Errorf("message %q does not name %s", p.stderr.String(), flag)
			}
			if _, err := os.Stat(filepath.Join(rt, "netcluster")); err == nil {
				t.Error("the server started despite the bad profile path")
			}
		})
	}
}
