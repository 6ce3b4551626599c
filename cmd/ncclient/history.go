package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// historyLen is how many lines the prompt's history keeps.
const historyLen = 1000

// defaultHistoryFile is where the prompt keeps its history:
// $XDG_STATE_HOME/netcluster/ncclient_history, else under
// ~/.local/state; "" when neither can be found.
func defaultHistoryFile() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "netcluster", "ncclient_history")
}

// history is the prompt's history, kept in a file (one line per entry,
// oldest first) so that the next session has it too. It implements
// term.History.
type history struct {
	path    string // "" keeps the history in memory only
	entries []string
	warn    func(error) // hears a file that cannot be written, once
	failed  bool
}

// loadHistory reads the history file; a missing file is an empty
// history. When the file has grown past twice historyLen lines it is
// rewritten with the last historyLen.
func loadHistory(path string, warn func(error)) *history {
	h := &history{path: path, warn: warn}
	if path == "" {
		return h
	}
	f, err := os.Open(path)
	if err != nil {
		if !os.IsNotExist(err) {
			h.fail(err)
		}
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if line := sc.Text(); strings.TrimSpace(line) != "" {
			h.entries = append(h.entries, line)
		}
	}
	if err := sc.Err(); err != nil {
		h.fail(err)
	}
	if len(h.entries) > historyLen {
		h.entries = h.entries[len(h.entries)-historyLen:]
	}
	if n > 2*historyLen {
		h.rewrite()
	}
	return h
}

func (h *history) fail(err error) {
	if !h.failed && h.warn != nil {
		h.warn(fmt.Errorf("history file: %w", err))
	}
	h.failed = true
}

func (h *history) rewrite() {
	tmp := h.path + ".tmp"
	text := strings.Join(h.entries, "\n") + "\n"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		h.fail(err)
		return
	}
	if err := os.Rename(tmp, h.path); err != nil {
		h.fail(err)
	}
}

// Add appends a line, unless it is blank or repeats the last one, and
// writes it to the file.
func (h *history) Add(line string) {
	line = strings.TrimSpace(line)
	if line == "" || strings.ContainsAny(line, "\r\n") {
		return
	}
	if n := len(h.entries); n > 0 && h.entries[n-1] == line {
		return
	}
	h.entries = append(h.entries, line)
	if len(h.entries) > historyLen {
		h.entries = h.entries[1:]
	}
	if h.path == "" || h.failed {
		return
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		h.fail(err)
		return
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		h.fail(err)
		return
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		h.fail(err)
	}
}

// Len is the number of entries.
func (h *history) Len() int { return len(h.entries) }

// At returns an entry: 0 is the most recent.
func (h *history) At(i int) string { return h.entries[len(h.entries)-1-i] }
