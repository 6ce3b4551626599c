package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/router/routertest"
)

// TestRecordReplayTerminal runs record and replay in a terminal: record
// draws a live line (events, bytes, rate, time) that follows the events
// emitted, Ctrl-C finishes the file, and replay draws a progress bar that
// reaches 100%.
func TestRecordReplayTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed; progress lines are tested in a terminal that tmux keeps")
	}
	ts := newServer(t)
	dir := routertest.ShortTempDir(t)
	t.Cleanup(func() { exec.Command(tmux, "-S", filepath.Join(dir, "tmux.sock"), "kill-server").Run() })
	env := []string{"TERM=xterm", "XDG_STATE_HOME=" + dir}
	path := filepath.Join(dir, "t.mcap")
	rec := newTmux(t, tmux, dir, "rec", env, "-socket", ts.Template, "-history", "", "record", "-o", path, "A")
	rec.waitText("recording A")
	a := ts.Dial(t, "A")
	for range 7 {
		a.Emit("tick", []byte("0123456789"))
	}
	live := regexp.MustCompile(`recorded 7 events, 84 B, \d+ events/s, 0:00:\d\d`)
	rec.waitFor("the live line to count 7 events", func(scr string) bool { return live.MatchString(scr) })
	rec.keys("C-c")
	rec.waitText("[exit 0]")
	if !strings.Contains(rec.screen(), "recorded 7 events (") {
		t.Errorf("no closing line:\n%s", rec.screen())
	}
	if _, msgs := readRecording(t, path); len(msgs) != 7 {
		t.Errorf("the recording has %d messages, want 7", len(msgs))
	}

	rp := newTmux(t, tmux, dir, "rp", env, "-socket", ts.Template, "-history", "", "replay", "-rate", "max", path)
	rp.waitText("[exit 0]")
	bar := "[" + strings.Repeat("#", 30) + "] 100% replayed 7 events, 84 B"
	if !strings.Contains(rp.screen(), bar) || !strings.Contains(rp.screen(), "replayed 7 events (84 B) in ") {
		t.Errorf("the screen shows no full progress bar %q:\n%s", bar, rp.screen())
	}
}
