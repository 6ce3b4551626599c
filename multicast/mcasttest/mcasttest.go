// Package mcasttest runs multicast tests where their datagrams cannot
// leave the machine: inside network namespaces that the test binary
// creates for itself.
//
// A package whose tests multicast calls Main first thing in its TestMain.
// Main runs the test binary again inside a new user and network namespace
// (unshare -rn) with the loopback interface up, multicast on and the
// route 224.0.0.0/4 via lo, and exits with its status. Tests then call
// Need, which skips them with the reason when no such namespace could be
// made, and use the interface "lo". Hosts builds several "hosts" (network
// namespaces joined by veth pairs to a bridge) for tests that need more
// than one interface.
//
// Nothing here touches the network namespace the binary was started in.
package mcasttest

import (
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// envMarker is set in the environment of the binary run inside the
// namespace: its value is "ok", or why the namespace is not usable.
const envMarker = "NETCLUSTER_TEST_NETNS"

// unavailable says why multicast tests cannot run here; "" when they can.
var unavailable = "mcasttest.Main was not called from TestMain"

// Need skips the test unless it runs inside a private network namespace
// made by Main.
func Need(t testing.TB) {
	t.Helper()
	if unavailable != "" {
		t.Skipf("skipping: multicast tests run only inside a private network namespace, and %s", unavailable)
	}
}

// Interface is the interface tests in the namespace join groups on.
const Interface = "lo"

var nextPort atomic.Int32

// Port returns a UDP port that no other call in this process returned,
// so that the servers of different tests never hear each other.
func Port() int { return 20000 + int(nextPort.Add(1)) }

// run runs a command and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
