package channel_test

import (
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestClientLookupAndMode: Client finds a connected client by its id,
// SetMode changes the socket file in place, and CountUndeliverable shows
// in Stats.
func TestClientLookupAndMode(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New()})
	// alpha runs in a process of its own, so that the pids the channel
	// learns of it can only be alpha's, not this process's.
	alpha := routertest.StartChild(t, ch.Path(), "A", "alpha", 0)
	routertest.WaitFor(t, "alpha to join", func() bool { return ch.Client(alpha.ID) != nil })
	if got := ch.Client(alpha.ID).Info(); got.Name != "alpha" || got.HelloPID != uint64(alpha.PID) || got.PID != alpha.PID || got.UID != os.Getuid() {
		t.Errorf("Info() = %+v, want name alpha and pids %d (this process is %d)", got, alpha.PID, os.Getpid())
	}
	c := dial(t, ch, "beta")
	id := c.ID()
	routertest.WaitFor(t, "beta to join", func() bool { return ch.Client(id) != nil })
	if ch.Client(uuid.New()) != nil {
		t.Error("Client found an id nobody has")
	}

	if ch.Mode() != 0o660 {
		t.Errorf("Mode() = %04o, want 0660", ch.Mode())
	}
	if err := ch.SetMode(0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(ch.Path())
	if err != nil || fi.Mode().Perm() != 0o600 || ch.Mode() != 0o600 {
		t.Errorf("after SetMode(0600): file %v, Mode() %04o, %v", fi.Mode(), ch.Mode(), err)
	}
	// SetMode kept the client: an event it emits now arrives on the
	// connection it was dialed on. (Emit returning nil would not say: a
	// dropped client reconnects, and meanwhile buffers.)
	if err := c.Emit("still", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the client's event on its first connection", func() bool {
		conn := ch.Client(id)
		return conn == nil || conn.Info().FramesIn == 1
	})
	if ch.Client(id) == nil || c.ID() != id {
		t.Errorf("SetMode dropped the client: its first connection %v is gone, its id is now %v", id, c.ID())
	}

	ch.CountUndeliverable()
	if n := ch.Stats().Undeliverable; n != 1 {
		t.Errorf("Undeliverable = %d, want 1", n)
	}
	c.Close()
	routertest.WaitFor(t, "the client to leave", func() bool { return ch.Client(id) == nil })
}

func TestSetModeAfterRemoval(t *testing.T) {
	ch := listen(t, channel.Config{Name: "A", Node: uuid.New()})
	os.Remove(ch.Path())
	if err := ch.SetMode(0o600); err == nil {
		t.Error("SetMode on a removed socket file: no error")
	}
	if ch.Mode() != 0o660 {
		t.Errorf("a failed SetMode changed Mode() to %04o", ch.Mode())
	}
}
