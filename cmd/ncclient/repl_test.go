package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// tmuxSession is ncclient at its prompt in a terminal that tmux keeps:
// the test types keys and reads the screen, as a person would.
type tmuxSession struct {
	t    *testing.T
	tmux string
	sock string
	name string
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// newTmux starts ncclient in a 200×50 terminal, on a private tmux server
// that the test ends. When ncclient exits, the pane says "[exit N]".
func newTmux(t *testing.T, tmux, dir, name string, env []string, args ...string) *tmuxSession {
	t.Helper()
	s := &tmuxSession{t: t, tmux: tmux, sock: filepath.Join(dir, "tmux.sock"), name: name}
	words := []string{"env"}
	for _, e := range env {
		words = append(words, shellQuote(e))
	}
	words = append(words, shellQuote(binary))
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	script := strings.Join(words, " ") + `; echo "[exit $?]"; sleep 600`
	s.run("new-session", "-d", "-x", "200", "-y", "50", "-s", name, script)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screen of %s:\n%s", name, s.screen())
		}
		s.run("kill-session", "-t", name)
	})
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys sends keys by tmux's names: "Enter", "Tab", "Up", "C-c".
func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	s.run(append([]string{"send-keys", "-t", s.name}, keys...)...)
}

// typ types text as it is.
func (s *tmuxSession) typ(text string) {
	s.t.Helper()
	s.run("send-keys", "-t", s.name, "-l", text)
}

// screen is what the terminal shows, without trailing blank lines.
func (s *tmuxSession) screen() string {
	out, err := exec.Command(s.tmux, "-S", s.sock, "capture-pane", "-p", "-t", s.name).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(capture-pane: %v: %s)", err, out)
	}
	return strings.TrimRight(string(out), "\n ")
}

// lastLine is the screen's last line that is not blank.
func (s *tmuxSession) lastLine() string {
	scr := s.screen()
	return strings.TrimRight(scr[strings.LastIndex(scr, "\n")+1:], " ")
}

// waitFor polls the screen until cond holds.
func (s *tmuxSession) waitFor(what string, cond func(screen string) bool) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(s.screen()) {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; the screen:\n%s", what, s.screen())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitText waits until the screen shows text.
func (s *tmuxSession) waitText(text string) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("%q on the screen", text), func(scr string) bool { return strings.Contains(scr, text) })
}

// waitLast waits until the last line is exactly line: the prompt and
// what is typed after it.
func (s *tmuxSession) waitLast(line string) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("the last line to be %q", line), func(string) bool { return s.lastLine() == line })
}

// TestPrompt uses the prompt as a person would, in a terminal: help, a
// request in each spelling, Tab completion of commands and channels
// (also of a channel added since the last completion), a listen that
// shows an event another program emits and ends with Ctrl-C, Ctrl-C on a
// half-typed line, the history with Up, quit, and the history again in
// a second session.
func TestPrompt(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed; the prompt is tested in a terminal that tmux keeps")
	}
	ts := newServer(t)
	dir := routertest.ShortTempDir(t)
	t.Cleanup(func() { exec.Command(tmux, "-S", filepath.Join(dir, "tmux.sock"), "kill-server").Run() })
	history := filepath.Join(dir, "history")
	env := []string{"TERM=xterm", "XDG_STATE_HOME=" + dir}
	args := []string{"-socket", ts.Template, "-history", history}
	s := newTmux(t, tmux, dir, "first", env, args...)
	s.waitLast("ncclient>")
	if !strings.Contains(s.screen(), "ncclient: connected to "+ts.Path("control")+"; channels: A, B, control\n") {
		t.Errorf("the prompt did not greet with the server's channels:\n%s", s.screen())
	}

	s.typ("help")
	s.keys("Enter")
	s.waitText("list the commands, or explain one")
	s.waitLast("ncclient>")

	s.typ("channels")
	s.keys("Enter")
	s.waitText(ts.Path("control"))
	s.waitLast("ncclient>")

	s.typ(`showchannel("A")`)
	s.keys("Enter")
	s.waitText("channel: A\n")
	s.waitLast("ncclient>")

	// Completion: a command, its candidates, a channel.
	s.typ("showch")
	s.keys("Tab")
	s.waitLast("ncclient> showchannel")
	s.typ("B")
	s.keys("Tab")
	s.waitFor("the line to end in a space after B", func(string) bool {
		return strings.HasSuffix(s.screen(), "ncclient> showchannel B")
	})
	s.keys("Enter")
	s.waitText("channel: B\n")
	s.waitLast("ncclient>")
	s.typ("show")
	s.keys("Tab")
	s.waitLast("ncclient> showc")
	s.keys("Tab")
	s.waitText("showchannel  showclient  showconfig\n")
	s.waitLast("ncclient> showc")
	s.keys("C-u")
	s.waitLast("ncclient>")

	// A channel added by a reload is completed: the cache of names is
	// refreshed when it has no match.
	cfg, err := router.Parse("more.json", []byte(`{"socket": "`+ts.Template+`", `+
		`"channels": {"A": {"propagatetochannels": "B"}, "B": {}, "Cnew": {}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	s.typ(`listen("C`)
	s.keys("Tab")
	s.waitLast(`ncclient> listen("Cnew"`)
	s.keys("C-u")
	s.waitLast("ncclient>")

	// listen shows what another program emits; Ctrl-C ends it.
	s.typ("listen A")
	s.keys("Enter")
	s.waitText("listening on A for .*; Ctrl-C returns to the prompt")
	a := ts.Dial(t, "A")
	if err := a.Emit("log", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	s.waitText(" A log " + a.ID().String()[:8] + ` {"x":1}`)
	s.keys("C-c")
	s.waitLast("ncclient>")

	// Ctrl-C on a half-typed line drops it.
	s.typ("showconf")
	s.keys("C-c")
	s.waitText("ncclient> showconf^C\n")
	s.waitLast("ncclient>")

	// Up brings back the last command.
	s.keys("Up")
	s.waitLast("ncclient> listen A")
	s.keys("Up")
	s.waitLast("ncclient> showchannel B")
	s.keys("C-u")
	s.typ("quit")
	s.keys("Enter")
	s.waitText("[exit 0]")

	text, err := os.ReadFile(history)
	if err != nil {
		t.Fatal(err)
	}
	want := "help\nchannels\nshowchannel(\"A\")\nshowchannel B\nlisten A\nquit\n"
	if string(text) != want {
		t.Errorf("history file:\n%s\nwant:\n%s", text, want)
	}

	// A second session has the history of the first; Ctrl-D leaves.
	s2 := newTmux(t, tmux, dir, "second", env, args...)
	s2.waitLast("ncclient>")
	s2.keys("Up")
	s2.waitLast("ncclient> quit")
	s2.keys("Up")
	s2.waitLast("ncclient> listen A")
	s2.keys("C-u", "C-d")
	s2.waitText("[exit 0]")
}

// TestPromptServerLater starts the prompt with no server running: it says
// so, a command fails with the reason, and once a server starts the same
// command works without restarting ncclient.
func TestPromptServerLater(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed; the prompt is tested in a terminal that tmux keeps")
	}
	dir := routertest.ShortTempDir(t)
	t.Cleanup(func() { exec.Command(tmux, "-S", filepath.Join(dir, "tmux.sock"), "kill-server").Run() })
	sockets := filepath.Join(dir, "sockets")
	template := sockets + "/{channel}.sock"
	s := newTmux(t, tmux, dir, "later", []string{"TERM=xterm"}, "-socket", template, "-history", "")
	s.waitLast("ncclient>")
	s.waitText("ncclient: no server is running: nothing answers on " + sockets + "/control.sock")

	s.typ("clientcount")
	s.keys("Enter")
	s.waitFor("a second complaint", func(scr string) bool { return strings.Count(scr, "no server is running") == 2 })
	s.waitLast("ncclient>")

	routertest.NewServerIn(t, sockets, testChannels)
	s.typ("clientcount")
	s.keys("Enter")
	s.waitText("total: 1\n")
	s.waitLast("ncclient>")
	s.keys("C-d")
	s.waitText("[exit 0]")
}

// TestScriptSignal: SIGTERM or SIGINT to ncclient running piped commands
// ends the command under way and the script: the next command does not
// run, and the status is a shell's for the signal. (Before, the signal
// ended only the command, and the script went on: here, with an emit.)
func TestScriptSignal(t *testing.T) {
	ts := newServer(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		rec := routertest.Record(t, ts.Dial(t, "A"), "after")
		cmd := clientCmd(t, ts.Template)
		cmd.Stdin = strings.NewReader("listen B\nemit A after 1\n")
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		routertest.WaitFor(t, "listen to begin", func() bool { return strings.Contains(stderr.String(), "listening") })
		cmd.Process.Signal(tc.sig)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("%v: ncclient ended with %v, want exit status %d; stderr %q", tc.sig, err, tc.code, stderr.String())
		}
		// The script's emit would have come before this one.
		if err := ts.Dial(t, "A").Emit("after", 2); err != nil {
			t.Fatal(err)
		}
		rec.WaitCount(t, "after", 1)
		time.Sleep(50 * time.Millisecond)
		if n := rec.Count("after"); n != 1 {
			t.Errorf("%v: the channel heard %d events named after; the script's emit ran after the signal", tc.sig, n)
		}
	}
}

// TestPromptZeroSizeTerminal: on a pseudo-terminal whose size nobody set
// (0×0, as script makes one in CI), the prompt and the line typed are
// drawn as at 80 columns. Before, the line editor took width 0 and put
// every character on a line of its own.
func TestPromptZeroSizeTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) is not installed")
	}
	ts := newServer(t)
	cmd := exec.Command(script, "-qec", shellQuote(binary)+" -socket "+shellQuote(ts.Template)+" -history ''", "/dev/null")
	cmd.Env = append(os.Environ(), "TERM=dumb", "XDG_STATE_HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("loglevel\r\x04")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), prompt+"loglevel") {
		t.Errorf("the typed line is not drawn after the prompt:\n%q", out)
	}
}

// TestNoTerminalQuery: a command whose standard output is a terminal
// writes only its answer there: it asks the terminal nothing. (The
// terminal library top used before queried the background colour and
// the cursor as the program started, whatever the command, and waited
// 5 s for a terminal that does not answer, as script's does not.)
func TestNoTerminalQuery(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) is not installed")
	}
	ts := newServer(t)
	cmd := exec.Command(script, "-qec", shellQuote(binary)+" -socket "+shellQuote(ts.Template)+" -history '' loglevel", "/dev/null")
	cmd.Env = append(os.Environ(), "TERM=xterm-256color", "XDG_STATE_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "level: ") {
		t.Errorf("ncclient loglevel on a terminal wrote %q, want only its answer", out)
	}
}
