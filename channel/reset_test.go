package channel_test

import (
	"net"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestLeaveWithUnreadFrames closes a client while frames for it are
// still unread in its socket, which makes the server's next read fail
// with "connection reset by peer": that is a client leaving, not an
// error worth a warning.
func TestLeaveWithUnreadFrames(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	pub := ts.Dial(t, "A")
	quiet, err := net.Dial("unix", ts.Path("A"))
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	hello := wire.Hello{Version: wire.ProtocolVersion, ClientID: uuid.New(), Name: "quiet"}
	if _, err := quiet.Write(wire.AppendHello(nil, &hello)); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the quiet client's handshake", func() bool {
		cs, _ := ts.Clients("A")
		return len(cs) == 2
	})
	for i := range 50 {
		if err := pub.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the frames to reach the quiet client's socket", func() bool {
		cs, _ := ts.Clients("A")
		for _, ci := range cs {
			if ci.Name == "quiet" {
				return ci.FramesOut == 51 && ci.Pending == 0 // the welcome and 50 events
			}
		}
		return false
	})
	quiet.Close() // with the welcome and 50 events unread
	routertest.WaitFor(t, "the quiet client to leave", func() bool {
		cs, _ := ts.Clients("A")
		return len(cs) == 1
	})
	for _, line := range strings.Split(ts.Logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("logged: %s", line)
		}
	}
}
