package bus

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// busPath is this package's import path; thisModule is its module;
// wirePath is the one package of the module that bus may import: the
// codec both sides speak.
const (
	busPath    = "github.com/netcluster/netcluster/bus"
	thisModule = "github.com/netcluster/netcluster"
	wirePath   = "github.com/netcluster/netcluster/internal/wire"
)

// allowedModules are the only modules outside the standard library that
// bus may depend on: an application that emits and listens pulls in the
// client and the codec, nothing of the server.
var allowedModules = []string{
	"github.com/google/uuid",
	"github.com/vmihailenco/msgpack/v5",
	"github.com/vmihailenco/tagparser/v2", // msgpack's
}

// dep is one line of go list -deps: a package, whether it is standard,
// and its module ("" for the standard library).
type dep struct {
	path     string
	standard bool
	module   string
}

// windowsModules are allowed on Windows only: a channel there is a named
// pipe, and the standard library cannot dial one. go-winio is Microsoft's
// own, small, and what Docker and containerd dial pipes with; x/sys is
// its system-call layer.
var windowsModules = []string{
	"github.com/Microsoft/go-winio",
	"golang.org/x/sys",
}

// badDeps returns the dependencies bus must not have on goos.
func badDeps(goos string, deps []dep) []string {
	var bad []string
	for _, d := range deps {
		switch {
		case d.path == busPath, d.path == wirePath, d.standard:
		case d.module == thisModule:
			bad = append(bad, d.path+" (a package of this module: bus imports no server package)")
		case goos == "windows" && slices.Contains(windowsModules, d.module):
		case !slices.Contains(allowedModules, d.module):
			bad = append(bad, d.path+" (module "+d.module+" is not allowed)")
		}
	}
	return bad
}

func TestBadDeps(t *testing.T) {
	deps := []dep{
		{path: busPath, module: thisModule},
		{path: wirePath, module: thisModule},
		{path: "net", standard: true},
		{path: "vendor/golang.org/x/net/dns/dnsmessage", standard: true},
		{path: "github.com/vmihailenco/msgpack/v5/msgpcode", module: "github.com/vmihailenco/msgpack/v5"},
		{path: "github.com/google/uuid", module: "github.com/google/uuid"},
		{path: "github.com/netcluster/netcluster/channel", module: thisModule},
		{path: "golang.org/x/net/ipv4", module: "golang.org/x/net"},
		{path: "github.com/tailscale/hujson", module: "github.com/tailscale/hujson"},
	}
	winio := dep{path: "github.com/Microsoft/go-winio", module: "github.com/Microsoft/go-winio"}
	if bad := badDeps("windows", append(deps[:6:6], winio)); len(bad) != 0 {
		t.Errorf("on windows, badDeps = %q, want go-winio allowed", bad)
	}
	deps = append(deps, winio)
	got := badDeps("linux", deps)
	want := []string{"github.com/netcluster/netcluster/channel", "golang.org/x/net/ipv4", "github.com/tailscale/hujson", "github.com/Microsoft/go-winio"}
	if len(got) != len(want) {
		t.Fatalf("badDeps = %q, want the %d packages %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+" ") {
			t.Errorf("badDeps[%d] = %q, want %s", i, got[i], want[i])
		}
	}
}

// goTool finds the go command on PATH.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	return p
}

// TestDeps keeps the client package free of the server's packages and of
// modules beyond msgpack and uuid (and, on Windows, go-winio for pipes),
// on every system it is built for. Compare
// tailscale's tstest/deptest.
func TestDeps(t *testing.T) {
	gocmd := goTool(t)
	for _, target := range []struct{ goos, goarch string }{
		{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"freebsd", "amd64"}, {"windows", "amd64"}, {"windows", "arm64"},
	} {
		t.Run(target.goos+"-"+target.goarch, func(t *testing.T) {
			cmd := exec.Command(gocmd, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{with .Module}}{{.Path}}{{end}}", ".")
			cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("go list -deps: %v\n%s", err, stderr)
			}
			var deps []dep
			for line := range strings.Lines(strings.TrimSpace(string(out))) {
				f := strings.Fields(line)
				if len(f) < 2 {
					t.Fatalf("go list printed %q", line)
				}
				d := dep{path: f[0], standard: f[1] == "true"}
				if len(f) > 2 {
					d.module = f[2]
				}
				deps = append(deps, d)
			}
			// The listing is what it should be at all: bus itself, the
			// standard library, msgpack.
			for _, p := range []string{busPath, "net", "github.com/vmihailenco/msgpack/v5"} {
				if !slices.ContainsFunc(deps, func(d dep) bool { return d.path == p }) {
					t.Fatalf("go list -deps does not list %s; output:\n%s", p, out)
				}
			}
			for _, b := range badDeps(target.goos, deps) {
				t.Errorf("bus depends on %s", b)
			}
		})
	}
}
