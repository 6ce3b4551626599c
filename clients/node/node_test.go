// Package node_test runs the Node.js client's own tests (node --test)
// from the Go test suite, so that CI runs them with everything else.
// They build ncserver and a Go peer from this tree and start them.
package node_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// requireEnv, when set (as .ci/run sets it), makes a missing node or
// npm install a failure rather than a skip.
const requireEnv = "NETCLUSTER_REQUIRE_NODE"

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(requireEnv) != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func TestNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		skipOrFail(t, "node is not installed, so the Node.js client's tests cannot run: %v", err)
	}
	if _, err := os.Stat("node_modules/@msgpack/msgpack/package.json"); err != nil {
		skipOrFail(t, "the Node.js client's dependencies are not installed (run npm ci in clients/node): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "test/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}
