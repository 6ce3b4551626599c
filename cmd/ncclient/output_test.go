package main

import (
	"strings"
	"testing"
)

// TestWriteHuman renders an answer of each shape: scalars first, then
// nested maps and tables, with summary rows last.
func TestWriteHuman(t *testing.T) {
	resp := map[string]any{
		"name":    "x",
		"uptime":  1.5,
		"empty":   []any{},
		"targets": []any{"A", "B"},
		"nested":  map[string]any{"b": uint64(2), "a": true},
		"rows": []any{
			map[string]any{"id": "1", "name": "one", "n": int64(-1)},
			map[string]any{"id": "22", "extra": nil},
		},
		"channels": map[string]any{
			"B":       map[string]any{"in": 2},
			"(total)": map[string]any{"in": 3},
			"A":       map[string]any{"in": 1},
		},
	}
	var b strings.Builder
	if err := writeHuman(&b, "test", resp); err != nil {
		t.Fatal(err)
	}
	want := `name: x
uptime: 1.5s
empty: (none)
targets: A, B
channels:
  CHANNEL  IN
  A        1
  B        2
  (total)  3
nested:
  a: true
  b: 2
rows:
  ID  NAME  EXTRA  N
  1   one   -      -1
  22  -     -      -
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRequestError(t *testing.T) {
	e := &requestError{command: "reloadconfig", message: "bad.json: 1 problem\nbad.json:3:2: x: unknown key", problems: []string{"bad.json:4:1: y: unknown key"}}
	want := "reloadconfig: bad.json: 1 problem\nbad.json:3:2: x: unknown key\n  bad.json:4:1: y: unknown key"
	if e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
	p := problemText(map[string]any{"file": "f.json", "line": uint64(3), "column": uint64(2), "key": "x", "message": "unknown key"})
	if p != "f.json:3:2: x: unknown key" {
		t.Errorf("problemText: %q", p)
	}
}
