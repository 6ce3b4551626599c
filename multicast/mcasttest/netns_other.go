//go:build !linux

package mcasttest

import (
	"fmt"
	"net/netip"
	"testing"
)

// Main does nothing where network namespaces do not exist: Need skips.
func Main() { unavailable = "network namespaces exist only on Linux" }

// Host stands for one machine in a test; see the Linux version.
type Host struct{ Addr netip.Addr }

// HostInterface is the name of each host's interface.
const HostInterface = "eth0"

// Hosts skips the test: there are no network namespaces here.
func Hosts(t testing.TB, n int) []*Host {
	t.Helper()
	Need(t)
	t.Skip("skipping: test hosts need Linux network namespaces")
	return nil
}

// Do runs fn.
func (h *Host) Do(fn func()) { fn() }

// Run fails: there are no network namespaces here.
func (h *Host) Run(name string, args ...string) error {
	return fmt.Errorf("running %s in a test host: network namespaces exist only on Linux", name)
}
