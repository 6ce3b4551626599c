package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseLine feeds the line parser and the completer arbitrary lines:
// neither may panic, a line either makes a command with a fitting number
// of arguments or a usage error, and completion keeps the cursor on the
// line. Inputs the fuzzer finds go to testdata/fuzz/FuzzParseLine.
func FuzzParseLine(f *testing.F) {
	for _, l := range []string{
		"showchannel A", `showchannel("A")`, `emit("A", "log", {"x": [1, ")"]})`,
		`emit A log '{"x":1}'`, `listen "A" 'log .*'`, `showclient(, "x")`, `showchannel("A`,
		`emit('A', 'log', 'it\'s')`, "listen A log\\ x", "# comment", "showconfig();",
		`emit("A", "n", {"a": "\"}"})`, "help(sh", `showclient('A`,
	} {
		f.Add(l, uint(len(l)))
	}
	s := newSession(settings{socket: filepath.Join(f.TempDir(), "{channel}.sock"), timeout: time.Second}, io.Discard, io.Discard)
	s.channels = []string{"A", "B", "control"}
	f.Cleanup(s.close)
	f.Fuzz(func(t *testing.T, line string, pos uint) {
		c, err := parseLine(line)
		var ue *usageError
		switch {
		case err != nil && !errors.As(err, &ue):
			t.Fatalf("parseLine(%q): %v is not a usage error", line, err)
		case err == nil && c.name != "":
			if c.cmd == nil || len(c.args) < c.cmd.required() || len(c.args) > len(c.cmd.params) {
				t.Fatalf("parseLine(%q) = %+v", line, c)
			}
		}
		if !utf8.ValidString(line) {
			return // the terminal hands over whole characters only
		}
		p := int(pos % uint(len(line)+1))
		got := s.complete(line, p)
		if got.pos < 0 || got.pos > len(got.line) {
			t.Fatalf("complete(%q, %d) put the cursor at %d of %q", line, p, got.pos, got.line)
		}
		if !strings.HasSuffix(got.line, line[p:]) || !strings.HasPrefix(got.line, line[:p-len(lastWord(line[:p]))]) {
			t.Fatalf("complete(%q, %d) = %q changed more than the word before the cursor", line, p, got.line)
		}
	})
}

// lastWord is the text after the last space, tab, opening parenthesis or
// quote: what completion may replace.
func lastWord(s string) string {
	return s[strings.LastIndexAny(s, " \t(\"'")+1:]
}
