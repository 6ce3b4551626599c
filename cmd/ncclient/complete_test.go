package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestComplete completes lines against a real server: commands, channel
// names in both spellings, client ids, log levels.
func TestComplete(t *testing.T) {
	ts := newServer(t)
	c := ts.Dial(t, "A")
	id := c.ID().String()
	s := newSession(settings{socket: ts.Template, timeout: 5 * time.Second}, io.Discard, io.Discard)
	t.Cleanup(s.close)
	tests := []struct {
		line       string
		pos        int // -1: the end of the line
		want       string
		candidates []string
	}{
		{"", -1, "", []string{"channels", "clientcount", "emit", "exit", "help", "listen", "loglevel", "peers", "quit", "record", "reloadconfig", "replay", "restart", "showchannel", "showclient", "showconfig", "shutdown", "stats", "top"}},
		{"sta", -1, "stats ", nil},
		{"show", -1, "showc", nil},
		{"showc", -1, "showc", []string{"showchannel", "showclient", "showconfig"}},
		{"showch", -1, "showchannel ", nil},
		{"nope", -1, "nope", nil},
		{"showchannel ", -1, "showchannel ", []string{"A", "B", "control"}},
		{"showchannel c", -1, "showchannel control ", nil},
		{"showchannel Z", -1, "showchannel Z", nil},
		{"emit B", -1, "emit B ", nil},
		{"emit B x", -1, "emit B x", nil}, // an event name: nothing to offer
		{"listen c x", 8, "listen control x", nil},
		{`showchannel("`, -1, `showchannel("`, []string{"A", "B", "control"}},
		{`showchannel("B`, -1, `showchannel("B")`, nil},
		{`showchannel(c`, -1, `showchannel("control")`, nil},
		{`showclient('A`, -1, `showclient('A'`, nil},
		{"showclient A ", -1, "showclient A " + id + " ", nil},
		{"showclient A " + id[:4], -1, "showclient A " + id + " ", nil},
		{"loglevel w", -1, "loglevel warn ", nil},
		{"help sh", -1, "help sh", []string{"showchannel", "showclient", "showconfig", "shutdown"}},
		{"stats ", -1, "stats ", nil},
		{"nope ", -1, "nope ", nil},
	}
	for _, tt := range tests {
		pos := tt.pos
		if pos < 0 {
			pos = len(tt.line)
		}
		got := s.complete(tt.line, pos)
		if got.line != tt.want || !slices.Equal(got.candidates, tt.candidates) {
			t.Errorf("complete(%q, %d) = %q, candidates %q; want %q, %q", tt.line, pos, got.line, got.candidates, tt.want, tt.candidates)
		}
		if got.changed != (got.line != tt.line) {
			t.Errorf("complete(%q, %d): changed is %v", tt.line, pos, got.changed)
		}
	}
}

// TestCompleteNoServer: without a server there is nothing to offer, and
// Tab does not hang.
func TestCompleteNoServer(t *testing.T) {
	s := newSession(settings{socket: filepath.Join(t.TempDir(), "{channel}.sock"), timeout: 5 * time.Second}, io.Discard, io.Discard)
	t.Cleanup(s.close)
	if got := s.complete("showchannel ", 12); got.changed || got.candidates != nil {
		t.Errorf("complete without a server: %+v", got)
	}
}

func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "history")
	var warnings []error
	h := loadHistory(path, func(err error) { warnings = append(warnings, err) })
	for _, l := range []string{"help", "  ", "stats ", "stats", "channels"} {
		h.Add(l)
	}
	if h.Len() != 3 || h.At(0) != "channels" || h.At(2) != "help" {
		t.Errorf("history: %q", h.entries)
	}
	text, err := os.ReadFile(path)
	if err != nil || string(text) != "help\nstats\nchannels\n" {
		t.Errorf("history file %q, %v", text, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("history file mode: %v, %v", fi.Mode(), err)
	}

	// A long file is cut to the last historyLen lines when loaded.
	var long strings.Builder
	for i := range 2*historyLen + 1 {
		long.WriteString(strings.Repeat("x", i%7+1) + "\n")
	}
	os.WriteFile(path, []byte(long.String()), 0o600)
	h = loadHistory(path, nil)
	if h.Len() != historyLen {
		t.Errorf("loaded %d lines, want %d", h.Len(), historyLen)
	}
	text, _ = os.ReadFile(path)
	if n := strings.Count(string(text), "\n"); n != historyLen {
		t.Errorf("the file was rewritten with %d lines, want %d", n, historyLen)
	}

	// A file that cannot be written is said once, and the history
	// works on in memory.
	dir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(dir, nil, 0o600)
	h = loadHistory(filepath.Join(dir, "history"), func(err error) { warnings = append(warnings, err) })
	h.Add("a")
	h.Add("b")
	if h.Len() != 2 || len(warnings) != 1 {
		t.Errorf("history in a file below a file: %d entries, warnings %v", h.Len(), warnings)
	}
}
