package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestOperationDoc keeps the ncclient section of docs/operation.md, which the
// README links to, in step with the commands and the exit statuses.
func TestOperationDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/operation.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## ncclient\n")
	if !ok {
		t.Fatal(`docs/operation.md has no "## ncclient" section`)
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	for _, c := range commands {
		if row := fmt.Sprintf("| `%s` |", c.synopsis()); !strings.Contains(section, row) {
			t.Errorf("docs/operation.md's table of commands has no row %q", row)
		}
	}
	for _, code := range []int{exitOK, exitFailed, exitUsage, exitNoServer} {
		if row := fmt.Sprintf("\n| %d | ", code); !strings.Contains(section, row) {
			t.Errorf("docs/operation.md does not explain exit status %d", code)
		}
	}
}
