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
	c := dial(t, ch, "alpha")
	routertest.WaitFor(t, "the client to join", func() bool { return ch.Client(c.ID()) != nil })
	if got := ch.Client(c.ID()).Info(); got.Name != "alpha" || got.HelloPID != uint64(os.Getpid()) || got.UID != os.Getuid() {
		t.Errorf("Info() = %+v", got)
	}
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
	if err := c.Emit("still", nil); err != nil || c.Err() != nil {
		t.Errorf("the client was harmed: %v", c.Err())
	}

	ch.CountUndeliverable()
	if n := ch.Stats().Undeliverable; n != 1 {
		t.Errorf("Undeliverable = %d, want 1", n)
	}
	c.Close()
	routertest.WaitFor(t, "the client to leave", func() bool { return ch.Client(c.ID()) == nil })
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
