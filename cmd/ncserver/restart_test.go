//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestControlRestart: the control request restart is answered, then
// ncserver stops gracefully (clients get the shutdown error frame, the
// sockets go) and runs again in the same process, on its configuration
// file as the file is now.
func TestControlRestart(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	sockDir := filepath.Join(rt, "netcluster")
	tmpl := bus.SocketTemplate(filepath.Join(sockDir, "{channel}.sock"))
	conf := filepath.Join(rt, "nc.json")
	write := func(text string) {
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"channels": {"A": {}}}`)
	p := start(t, rt, conf)
	waitForLog(t, p, "channel=control socket=")
	ctx := context.Background()

	errs := make(chan error, 4)
	old, err := bus.Dial(ctx, "A", tmpl, bus.ErrorHandler(func(err error) { errs <- err }), bus.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	ctl, err := bus.Dial(ctx, "control", tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()

	// A change a reload would also apply, and one only a start applies.
	write(`{"channels": {"A": {"propagatetochannels": "B"}, "B": {}}, "port": 4455}`)
	if ans := routertest.Control(t, ctl, "restart", nil); ans["ok"] != true {
		t.Fatalf("restart answer: %v", ans)
	}
	select {
	case err := <-errs:
		if se, ok := err.(*bus.ServerError); !ok || se.Code != bus.CodeShutdown {
			t.Errorf("the client heard %v, want a shutdown error frame", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client heard nothing")
	}
	<-old.Done()
	waitForLog(t, p, "stopped; starting again")
	waitForLog(t, p, "channel=B socket=")
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("ncserver exited: %v", err)
	default:
	}
	pid := fmt.Sprintf("pid=%d", p.cmd.Process.Pid)
	if n := strings.Count(p.stderr.String(), "msg=starting "); n != 2 {
		t.Errorf("ncserver started %d times, want 2", n)
	}
	for line := range strings.Lines(p.stderr.String()) {
		if strings.Contains(line, "msg=starting ") && !strings.Contains(line, pid) {
			t.Errorf("a start in another process than %s: %q", pid, line)
		}
	}

	// The new run serves the edited file: B exists, A reaches it, and
	// the port only a start applies is in effect.
	b, err := bus.Dial(ctx, "B", tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := routertest.Record(t, b, ".*")
	a, err := bus.Dial(ctx, "A", tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Emit("after-restart", "x"); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "after-restart", 1)
	ctl2, err := bus.Dial(ctx, "control", tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl2.Close()
	cfg, _ := routertest.Control(t, ctl2, "showconfig", nil)["config"].(map[string]any)
	if fmt.Sprint(cfg["port"]) != "4455" {
		t.Errorf("port after the restart: %v, want 4455", cfg["port"])
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if ents, _ := os.ReadDir(sockDir); len(ents) != 0 {
		t.Errorf("sockets left: %v", ents)
	}
}

// TestControlRestartBuiltIn: on the built-in configuration, restart
// runs the built-in configuration again.
func TestControlRestartBuiltIn(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	tmpl := bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock"))
	p := start(t, rt)
	waitForLog(t, p, "channel=control socket=")
	ctl, err := bus.Dial(context.Background(), "control", tmpl, bus.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	reply, err := ctl.Request(context.Background(), router.ControlPrefix+"restart", nil)
	if err != nil || reply.Event != router.ControlPrefix+"restart"+bus.ReplySuffix {
		t.Fatalf("restart: %v, %v", reply.Event, err)
	}
	<-ctl.Done()
	waitForLog(t, p, "stopped; starting again")
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.stderr.String(), "channel=control socket=") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("ncserver did not serve again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// TestControlRestartBadConfig: a configuration file that no longer loads
// stops the restarted ncserver as at any start: status 2, the file, line
// and key named.
func TestControlRestartBadConfig(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	conf := filepath.Join(rt, "nc.json")
	if err := os.WriteFile(conf, []byte(`{"channels": {"A": {}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, rt, conf)
	waitForLog(t, p, "channel=control socket=")
	ctl, err := bus.Dial(context.Background(), "control", bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock")))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if err := os.WriteFile(conf, []byte("{\n\"channels\": {},\n\"colour\": true\n}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ans := routertest.Control(t, ctl, "restart", nil); ans["ok"] != true {
		t.Fatalf("restart answer: %v", ans)
	}
	if code := p.exit(t); code != exitUsage {
		t.Errorf("exit status %d, want %d", code, exitUsage)
	}
	if !strings.Contains(p.stderr.String(), conf+":3:") || !strings.Contains(p.stderr.String(), "colour") {
		t.Errorf("the log does not name the file, line and key:\n%s", p.stderr)
	}
}
