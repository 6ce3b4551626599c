package channel

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoClientImport keeps the server's channel package off the client
// package: both speak through internal/wire, and neither imports the
// other.
func TestNoClientImport(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	out, err := exec.Command(gocmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, want := range []string{"github.com/netcluster/netcluster/internal/wire"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps does not list %s; output:\n%s", want, out)
		}
	}
	if slices.Contains(deps, "github.com/netcluster/netcluster/bus") {
		t.Error("channel depends on the client package bus")
	}
}
