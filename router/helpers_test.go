package router_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A test binary run again by routertest.StartChild is a client.
	routertest.ChildMain()
	// The network tests multicast: the whole binary runs inside a private
	// network namespace, so no datagram can leave the machine.
	mcasttest.Main()
	goleak.VerifyTestMain(checkBuffers{m})
}

// checkBuffers fails a test binary whose servers, all stopped, still hold
// pooled frame buffers: references taken and never released. Only
// builds with -tags ncpoison count them.
type checkBuffers struct{ m *testing.M }

func (c checkBuffers) Run() int {
	code := c.m.Run()
	removeNcserver()
	if n := channel.LiveBuffers(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "%d pooled frame buffers still held after every test\n", n)
		return 1
	}
	return code
}
