package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedDeps are the packages and modules outside the standard library
// that ncclient may depend on: the client package (and what it needs:
// internal/wire, the codec both sides speak), internal/mcap (the file
// format of record and replay, and lz4 for its compressed chunks) and the
// terminal library,
// never a package of the server. go-winio is
// how bus dials the named pipes of Windows. bubbletea and lipgloss (v2:
// v1 queried the terminal's colours as the program started, whatever the
// command, and a terminal that does not answer held every command 5 s)
// draw top's live view; the modules after them are what they need.
var allowedDeps = []string{
	"github.com/netcluster/netcluster/bus",
	"github.com/netcluster/netcluster/internal/wire",
	"github.com/netcluster/netcluster/internal/mcap",
	"github.com/pierrec/lz4/v4",
	"github.com/netcluster/netcluster/cmd/ncclient",
	"github.com/google/uuid",
	"github.com/vmihailenco/msgpack/v5",
	"github.com/vmihailenco/tagparser/v2",
	"golang.org/x/term",
	"golang.org/x/sys",
	"github.com/Microsoft/go-winio",
	"charm.land/bubbletea/v2",
	"charm.land/lipgloss/v2",
	"github.com/charmbracelet/colorprofile",
	"github.com/charmbracelet/ultraviolet",
	"github.com/charmbracelet/x/ansi",
	"github.com/charmbracelet/x/term",
	"github.com/charmbracelet/x/termios",
	"github.com/charmbracelet/x/windows",
	"github.com/clipperhouse/displaywidth",
	"github.com/clipperhouse/uax29/v2",
	"github.com/lucasb-eyer/go-colorful",
	"github.com/mattn/go-runewidth",
	"github.com/muesli/cancelreader",
	"github.com/rivo/uniseg",
	"github.com/xo/terminfo",
	"golang.org/x/sync/errgroup",
}

// TestDeps keeps ncclient a thin client on bus, on the systems it is
// built for.
func TestDeps(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	for _, goos := range []string{"linux", "darwin", "windows"} {
		t.Run(goos, func(t *testing.T) {
			cmd := exec.Command(gocmd, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
			cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps: %v\n%s", err, out)
			}
			deps := strings.Fields(string(out))
			if !slices.Contains(deps, "github.com/netcluster/netcluster/bus") {
				t.Fatalf("go list -deps does not list bus:\n%s", out)
			}
			for _, d := range deps {
				if !slices.ContainsFunc(allowedDeps, func(a string) bool { return d == a || strings.HasPrefix(d, a+"/") }) {
					t.Errorf("ncclient depends on %s", d)
				}
			}
		})
	}
}
