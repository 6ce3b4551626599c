package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

// binary is ncserver built once for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	// TestNetwork multicasts: the whole test binary, and every ncserver it
	// starts, runs inside a private network namespace, so no datagram
	// can leave the machine.
	mcasttest.Main()
	dir, err := os.MkdirTemp("", "ncserver-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ncserver")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building ncserver: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	// goleak.VerifyTestMain would exit before the binary is removed: this
	// is what it does.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	stderr *routertest.LogBuffer
	done   chan error
}

// start runs ncserver with a private XDG_RUNTIME_DIR, so the default
// socket template points into the test's directory.
func start(t *testing.T, runtimeDir string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), stderr: &routertest.LogBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtimeDir)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("ncserver %v stderr:\n%s", args, p.stderr)
		}
	})
	return p
}

// exit waits for the process and returns its exit status.
func (p *proc) exit(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("ncserver did not exit")
		return -1
	}
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDefaultConfig runs ncserver with no arguments, as the README's
// first command does: it serves the built-in config's channels in the
// default socket directory, carries events from A to B, and on SIGTERM
// or SIGINT removes its sockets and exits 0.
func TestDefaultConfig(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			rt := routertest.ShortTempDir(t)
			sockDir := filepath.Join(rt, "netcluster")
			p := start(t, rt)
			for _, name := range []string{"A", "B", "control"} {
				waitForFile(t, filepath.Join(sockDir, name+".sock"))
			}
			waitForLog(t, p, "channel=control socket=")
			modes := map[string]fs.FileMode{"A": 0o660, "B": 0o660, "control": 0o600}
			for name, want := range modes {
				fi, _ := os.Stat(filepath.Join(sockDir, name+".sock"))
				if fi.Mode().Perm() != want {
					t.Errorf("%s: mode %04o, want %04o", name, fi.Mode().Perm(), want)
				}
				if !strings.Contains(p.stderr.String(), filepath.Join(sockDir, name+".sock")) {
					t.Errorf("the log does not say where channel %s's socket is", name)
				}
			}

			ctx := context.Background()
			tmpl := bus.SocketTemplate(filepath.Join(sockDir, "{channel}.sock"))
			b, err := bus.Dial(ctx, "B", tmpl)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got := make(chan string, 1)
			b.On("log", func(m bus.Message) {
				var s string
				m.Decode(&s)
				got <- s
			})
			a, err := bus.Dial(ctx, "A", tmpl)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			a.Emit("log", "TESTE")
			select {
			case s := <-got:
				if s != "TESTE" {
					t.Errorf("B got %q", s)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("B never heard A's event")
			}

			p.cmd.Process.Signal(sig)
			if code := p.exit(t); code != 0 {
				t.Errorf("exit status %d after %v, want 0", code, sig)
			}
			ents, _ := os.ReadDir(sockDir)
			if len(ents) != 0 {
				t.Errorf("socket directory after exit: %v, want empty", ents)
			}
		})
	}
}

func waitForLog(t *testing.T, p *proc, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q", text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBadConfig checks that a bad configuration stops ncserver before it
// creates anything, with the file, line and key named.
func TestBadConfig(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown key", "{\n  \"channels\": {},\n  \"colour\": true\n}\n", []string{":3:", "colour"}},
		{"bad regex", "{\"channels\": {\n  \"A\": {\"propagatetochannels\": \"(\"}\n}}\n", []string{":2:", "channels.A.propagatetochannels"}},
		{"bad channel name", "{\"channels\": {\n\n  \"a/b\": {}\n}}\n", []string{":3:", "a/b"}},
		{"non-boolean", "{\n\"connecttonet\": \"yes\"\n}\n", []string{":2:", "connecttonet", "true or false"}},
		{"reserved addr", "{\n\n\"addr\": \"224.0.0.0\"\n}\n", []string{":3:", "addr", "239.255.77.77"}},
		{"not HuJSON", "{\n\"channels\": {\n", []string{"config.json:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := routertest.ShortTempDir(t)
			path := filepath.Join(routertest.ShortTempDir(t), "config.json")
			os.WriteFile(path, []byte(tt.text), 0o644)
			p := start(t, rt, path)
			if code := p.exit(t); code != exitUsage {
				t.Errorf("exit status %d, want %d", code, exitUsage)
			}
			msg := p.stderr.String()
			for _, w := range append(tt.want, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if _, err := os.Stat(filepath.Join(rt, "netcluster")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket directory exists after a bad config: %v", err)
			}
		})
	}
}

// TestSecondServer starts ncserver twice on the same sockets.
func TestSecondServer(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	first := start(t, rt)
	waitForLog(t, first, "channel=control socket=")
	second := start(t, rt)
	if code := second.exit(t); code != exitFailed {
		t.Errorf("second server: exit status %d, want %d", code, exitFailed)
	}
	want := fmt.Sprintf("pid %d", first.cmd.Process.Pid)
	if !strings.Contains(second.stderr.String(), want) {
		t.Errorf("second server's message %q does not name the first (%s)", second.stderr.String(), want)
	}
	// The first is unharmed.
	c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock")))
	if err != nil {
		t.Fatalf("first server after the second's attempt: %v", err)
	}
	c.Close()
	first.cmd.Process.Signal(syscall.SIGTERM)
	if code := first.exit(t); code != 0 {
		t.Errorf("first server: exit status %d", code)
	}
}

// TestStaleAfterKill kills ncserver with SIGKILL, which leaves its socket
// files, and starts it again: the stale sockets are replaced.
func TestStaleAfterKill(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	first := start(t, rt)
	waitForLog(t, first, "channel=control socket=")
	first.cmd.Process.Kill()
	first.exit(t)
	if _, err := os.Stat(filepath.Join(rt, "netcluster", "A.sock")); err != nil {
		t.Fatalf("SIGKILL should leave the socket behind: %v", err)
	}
	second := start(t, rt)
	waitForLog(t, second, "channel=control socket=")
	if !strings.Contains(second.stderr.String(), "stale socket") {
		t.Error("the restarted server did not say it replaced stale sockets")
	}
	second.cmd.Process.Signal(syscall.SIGTERM)
	if code := second.exit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

func TestCheckFlag(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	p := start(t, rt, "-check", filepath.Join("..", "..", "config.json"))
	if code := p.exit(t); code != 0 {
		t.Errorf("-check on the shipped config: exit status %d", code)
	}
	if !strings.Contains(p.stderr.String(), "is valid") {
		t.Errorf("-check said %q", p.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(rt, "netcluster")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("-check created the socket directory")
	}
}
