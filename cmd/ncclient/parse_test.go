package main

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name, line string
		want       string   // the command; "" for no command
		args       []string // its arguments
		err        string   // a part of the usage error
	}{
		{"blank", "   ", "", nil, ""},
		{"comment", "# showconfig", "", nil, ""},
		{"no args", "showconfig", "showconfig", []string{}, ""},
		{"no args, call", "showconfig()", "showconfig", []string{}, ""},
		{"call with semicolon", "showconfig();", "showconfig", []string{}, ""},
		{"upper case", "ShowConfig", "showconfig", []string{}, ""},
		{"word", "showchannel A", "showchannel", []string{"A"}, ""},
		{"call, double quotes", `showchannel("A")`, "showchannel", []string{"A"}, ""},
		{"call, single quotes", `showchannel('A')`, "showchannel", []string{"A"}, ""},
		{"call, bare", `showchannel(A)`, "showchannel", []string{"A"}, ""},
		{"call, spaces", `showchannel ( "A" ) `, "showchannel", []string{"A"}, ""},
		{"call, escape", `showchannel("A\u0042")`, "showchannel", []string{"AB"}, ""},
		{"two args", "showclient A 5f0c", "showclient", []string{"A", "5f0c"}, ""},
		{"two args, call", `showclient("A", "5f0c")`, "showclient", []string{"A", "5f0c"}, ""},
		{"optional left out", "clientcount", "clientcount", []string{}, ""},
		{"shell quotes", `listen A 'log.*'`, "listen", []string{"A", "log.*"}, ""},
		{"double quotes", `listen "A" "log .*"`, "listen", []string{"A", "log .*"}, ""},
		{"backslash", `listen A log\ x`, "listen", []string{"A", "log x"}, ""},
		{"emit no data", "emit A log", "emit", []string{"A", "log"}, ""},
		{"emit object", `emit A log {"x": 1, "y": "a b"}`, "emit", []string{"A", "log", `{"x": 1, "y": "a b"}`}, ""},
		{"emit quoted object", `emit A log '{"x":1}'`, "emit", []string{"A", "log", `{"x":1}`}, ""},
		{"emit string", `emit A log "hello"`, "emit", []string{"A", "log", `"hello"`}, ""},
		{"emit number", `emit A n -5`, "emit", []string{"A", "n", `-5`}, ""},
		{"emit call object", `emit("A", "log", {"x": [1, ")"]})`, "emit", []string{"A", "log", `{"x": [1, ")"]}`}, ""},
		{"emit call string", `emit("A", "log", "hi")`, "emit", []string{"A", "log", `"hi"`}, ""},
		{"emit call single-quoted string", `emit('A', 'log', 'it\'s')`, "emit", []string{"A", "log", `"it's"`}, ""},
		{"emit call number", `emit("A", "n", 12.5)`, "emit", []string{"A", "n", `12.5`}, ""},
		{"emit call no data", `emit("A", "log")`, "emit", []string{"A", "log"}, ""},
		{"alias", "exit", "quit", []string{}, ""},
		{"unknown", "showchanel A", "", nil, `unknown command "showchanel"`},
		{"too few", "showchannel", "", nil, "showchannel takes 1 argument; usage: showchannel <channel>"},
		{"too many", "showconfig x", "", nil, "showconfig takes no arguments"},
		{"too many, call", `showchannel("A", "B")`, "", nil, "showchannel takes 1 argument"},
		{"unterminated quote", `listen 'A`, "", nil, "unterminated ' quote"},
		{"unterminated call", `showchannel("A"`, "", nil, "missing )"},
		{"junk after call", `showchannel("A") x`, "", nil, `unexpected "x" after )`},
		{"empty arg", `showclient(, "x")`, "", nil, "empty argument"},
		{"unclosed object", `emit("A", "log", {"x": 1)`, "", nil, "unclosed {"},
		{"missing comma", `showclient("A" "x")`, "", nil, "want , or )"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseLine(tt.line)
			if tt.err != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseLine(%q): error %v, want a usage error containing %q", tt.line, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseLine(%q): %v", tt.line, err)
			}
			if c.name != tt.want || (tt.want != "" && !slices.Equal(c.args, tt.args)) {
				t.Errorf("parseLine(%q) = %s %q, want %s %q", tt.line, c.name, c.args, tt.want, tt.args)
			}
		})
	}
}

func TestParseWords(t *testing.T) {
	tests := []struct {
		words []string
		want  string
		args  []string
		err   string
	}{
		{[]string{"showconfig"}, "showconfig", []string{}, ""},
		{[]string{"emit", "A", "log", `{"x":1}`}, "emit", []string{"A", "log", `{"x":1}`}, ""},
		{[]string{"emit", "A", "log", `{"x":`, `1}`}, "emit", []string{"A", "log", `{"x": 1}`}, ""},
		{[]string{"listen", "A", "log.*"}, "listen", []string{"A", "log.*"}, ""},
		{[]string{`showchannel("A")`}, "showchannel", []string{"A"}, ""},
		{[]string{"nope"}, "", nil, "unknown command"},
		{[]string{"listen"}, "", nil, "listen takes 1 to 2 arguments"},
	}
	for _, tt := range tests {
		c, err := parseWords(tt.words)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseWords(%q): error %v, want %q", tt.words, err, tt.err)
			}
			continue
		}
		if err != nil || c.name != tt.want || !slices.Equal(c.args, tt.args) {
			t.Errorf("parseWords(%q) = %s %q, %v; want %s %q", tt.words, c.name, c.args, err, tt.want, tt.args)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args  []string
		words []string
		json  bool
	}{
		{[]string{"showconfig", "--json"}, []string{"showconfig"}, true},
		{[]string{"--json", "showconfig"}, []string{"showconfig"}, true},
		{[]string{"listen", "A", "-json", "log.*"}, []string{"listen", "A", "log.*"}, true},
		{[]string{"emit", "A", "n", "-5"}, []string{"emit", "A", "n", "-5"}, false},
		{[]string{"emit", "A", "x", "--", "--json"}, []string{"emit", "A", "x", "--json"}, false},
		{nil, nil, false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		words, err := parseInterspersed(fs, tt.args)
		if err != nil || !slices.Equal(words, tt.words) || *asJSON != tt.json {
			t.Errorf("parseInterspersed(%q) = %q, json %v, %v; want %q, json %v", tt.args, words, *asJSON, err, tt.words, tt.json)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, []string{"showconfig", "--nope"}); err == nil {
		t.Error("an unknown flag after the command was accepted")
	}
}

func TestParseData(t *testing.T) {
	tests := []struct {
		text string
		want any
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"null", nil, ""},
		{"1", int64(1), ""},
		{"-5", int64(-5), ""},
		{"18446744073709551615", uint64(18446744073709551615), ""},
		{"1.5", 1.5, ""},
		{"1e3", 1000.0, ""},
		{`"s"`, "s", ""},
		{`{"a": [1, 2.5, {"b": true}]}`, map[string]any{"a": []any{int64(1), 2.5, map[string]any{"b": true}}}, ""},
		{"hello", nil, "data is not JSON"},
		{`{"a": 1`, nil, "data is not JSON"},
		{`1 2`, nil, "not one JSON value"},
		{"1e400", nil, `the number "1e400" is out of range`}, // was sent as +Inf
		{`{"a": [1, -1e400]}`, nil, "out of range"},
	}
	for _, tt := range tests {
		got, err := parseData(tt.text)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseData(%q): error %v, want %q", tt.text, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseData(%q) = %#v, %v; want %#v", tt.text, got, err, tt.want)
		}
	}
}
