package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestSIGHUPReload: SIGHUP reloads the file ncserver was started with;
// a bad file changes nothing and the log says why.
func TestSIGHUPReload(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	sockDir := filepath.Join(rt, "netcluster")
	conf := filepath.Join(rt, "nc.json")
	write := func(text string) {
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"channels": {"A": {}}}`)
	p := start(t, rt, conf)
	waitForLog(t, p, "channel=A socket=")
	tmpl := filepath.Join(sockDir, "{channel}.sock")
	a := routertest.DialWatched(t, tmpl, "A")

	write(`{"channels": {"A": {}, "B": {}}}`)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, p, "configuration reloaded")
	waitForFile(t, filepath.Join(sockDir, "B.sock"))

	write("{\n\"channels\": {\"A\": {}},\n\"port\": 0\n}")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, p, "configuration not reloaded")
	if !strings.Contains(p.stderr.String(), conf+":3:9: port: 0 is out of range") {
		t.Errorf("the log does not name file, line and key:\n%s", p.stderr)
	}
	if _, err := os.Stat(filepath.Join(sockDir, "B.sock")); err != nil {
		t.Errorf("a bad file changed the channels: %v", err)
	}
	a.CheckKept(t, tmpl) // neither reload dropped A's client
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// TestControlShutdownExits: the control request shutdown stops ncserver
// with status 0; loglevel changes what it logs; logs are JSON when asked.
func TestControlShutdownExits(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	sockDir := filepath.Join(rt, "netcluster")
	p := start(t, rt, "-log-format", "json")
	waitForFile(t, filepath.Join(sockDir, "control.sock"))
	waitForLog(t, p, `"channel":"control"`)
	ctl, err := bus.Dial(context.Background(), "control", bus.SocketTemplate(filepath.Join(sockDir, "{channel}.sock")))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if ans := routertest.Control(t, ctl, "loglevel", map[string]any{"level": "debug"}); ans["previous"] != "info" {
		t.Errorf("loglevel answer: %v", ans)
	}
	waitForLog(t, p, `"msg":"log level changed"`)
	if ans := routertest.Control(t, ctl, "shutdown", nil); ans["ok"] != true {
		t.Errorf("shutdown answer: %v", ans)
	}
	if code := p.exit(t); code != 0 {
		t.Errorf("exit status %d after shutdown, want 0", code)
	}
	for line := range strings.Lines(p.stderr.String()) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
	if ents, _ := os.ReadDir(sockDir); len(ents) != 0 {
		t.Errorf("sockets left: %v", ents)
	}
}

// TestSIGHUPBuiltIn: on the built-in configuration there is no file to
// reload; SIGHUP says so and the server goes on.
func TestSIGHUPBuiltIn(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	p := start(t, rt)
	waitForLog(t, p, "channel=control socket=")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, p, "configuration not reloaded")
	if !strings.Contains(p.stderr.String(), "built-in configuration") {
		t.Errorf("the log does not say why:\n%s", p.stderr)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}
