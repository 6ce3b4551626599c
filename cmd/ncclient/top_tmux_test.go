package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// lookTmux finds tmux. Without it the test skips, saying why, except in
// CI, which installs it and must not skip.
func lookTmux(t *testing.T) string {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tmux is not installed, and CI must install it: %v", err)
		}
		t.Skip("tmux is not installed; top's live view is tested in a terminal that tmux keeps (apt-get install tmux)")
	}
	return tmux
}

// screenRow finds the row of a table on the screen whose first word,
// after the selection mark, is first, and returns its words without the
// mark, and whether the row is the selected one.
func screenRow(screen, first string) (words []string, selected bool) {
	for _, l := range strings.Split(screen, "\n") {
		f := strings.Fields(l)
		sel := len(f) > 0 && f[0] == ">"
		if sel {
			f = f[1:]
		}
		if len(f) > 0 && f[0] == first {
			return f, sel
		}
	}
	return nil, false
}

// channelOrder are the channels of the channel table, in the order
// shown.
func channelOrder(screen string) []string {
	var names []string
	_, table, _ := strings.Cut(screen, "CHANNEL ")
	_, table, _ = strings.Cut(table, "\n")
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(strings.TrimPrefix(l, "> "))
		if len(f) == 0 {
			break
		}
		names = append(names, f[0])
	}
	return names
}

// rateAt reads the number in column i of a row; -1 when there is none.
func rateAt(words []string, i int) float64 {
	if i >= len(words) {
		return -1
	}
	v, err := strconv.ParseFloat(words[i], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestTopView drives the live view in a terminal, against a server
// where one client emits at a known pace and one listens: the rates it
// shows for the channel and for each client against the pace, a sort key
// and a change of channel from the keyboard, a resize, and q.
func TestTopView(t *testing.T) {
	tmux := lookTmux(t)
	ts := newServer(t)
	sub := ts.Dial(t, "A", bus.Name("sub"))
	heard := routertest.Record(t, sub, "tick")
	pub := ts.Dial(t, "A", bus.Name("pub"))
	pace(t, pub, make([]byte, 100))
	routertest.WaitFor(t, "the first events", func() bool { return heard.Count("tick") > pacedRate/4 })

	dir := routertest.ShortTempDir(t)
	t.Cleanup(func() { exec.Command(tmux, "-S", filepath.Join(dir, "tmux.sock"), "kill-server").Run() })
	s := newTmux(t, tmux, dir, "top", []string{"TERM=xterm-256color"}, "-socket", ts.Template, "-history", "", "top", "-d", "2", "A")

	// Two reads of the clients make their rates: wait for them, then
	// read the screen once and check what it shows. Two seconds
	// between reads: a step of the pace delayed by a loaded machine
	// weighs half as much as over one.
	s.waitFor("the clients of A with their rates", func(scr string) bool {
		row, _ := screenRow(scr, "pub")
		return rateAt(row, 4) > 0
	})
	scr := s.screen()
	a, sel := screenRow(scr, "A")
	// CHANNEL CLIENTS IN/s OUT/s …
	if !sel || rateAt(a, 1) != 2 || !near(rateAt(a, 2), pacedRate, 0.4) || !near(rateAt(a, 3), pacedRate, 0.4) {
		t.Errorf("channel A: %q (selected %v); want it selected, 2 clients, about %d events/s in and out\n%s", a, sel, pacedRate, scr)
	}
	// NAME ID PID UID IN/s OUT/s …
	pubRow, _ := screenRow(scr, "pub")
	subRow, _ := screenRow(scr, "sub")
	pid := strconv.Itoa(os.Getpid())
	if len(pubRow) < 6 || pubRow[2] != pid || !near(rateAt(pubRow, 4), pacedRate, 0.4) || rateAt(pubRow, 5) != 0 {
		t.Errorf("client pub: %q; want pid %s, about %d events/s in and none out\n%s", pubRow, pid, pacedRate, scr)
	}
	if len(subRow) < 6 || subRow[2] != pid || rateAt(subRow, 4) != 0 || !near(rateAt(subRow, 5), pacedRate, 0.4) {
		t.Errorf("client sub: %q; want pid %s, none in and about %d events/s out\n%s", subRow, pid, pacedRate, scr)
	}

	// i sorts by events in, most first: A, then control (top's own
	// requests), then B.
	s.keys("i")
	s.waitText("[sort in]")
	s.waitFor("A before control before B", func(scr string) bool {
		return strings.Join(channelOrder(scr), " ") == "A control B"
	})
	// Down selects the next channel in that order: control.
	s.keys("Down")
	s.waitText("clients of control (1)")
	if _, sel := screenRow(s.screen(), "control"); !sel {
		t.Errorf("after Down, control is not marked selected\n%s", s.screen())
	}

	// A smaller terminal: the help moves to its last line.
	s.run("resize-window", "-t", "top", "-x", "70", "-y", "15")
	s.waitFor("the help on line 15", func(scr string) bool {
		lines := strings.Split(scr, "\n")
		return len(lines) == 15 && strings.HasPrefix(lines[14], "q quit")
	})

	s.keys("q")
	s.waitText("[exit 0]")
}
