package router_test

import (
	"testing"

	"github.com/netcluster/netcluster/multicast/mcasttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The network tests multicast: the whole binary runs inside a private
	// network namespace, so no datagram can leave the machine.
	mcasttest.Main()
	goleak.VerifyTestMain(m)
}
