package routertest

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
)

// Watched is a client whose connection a test means to prove unbroken.
// Clients reconnect by default, so neither Emit returning nil nor Err
// being nil says that a connection was kept: a Watched client remembers
// the id of the connection it was dialed on and counts the times its
// connection broke, and CheckKept asks the server.
type Watched struct {
	*bus.Client
	// FirstID is the client's id on the connection it was dialed on.
	FirstID uuid.UUID
	drops   atomic.Int32
}

// DialWatched connects a Watched client to channel through the socket
// template, closed when the test ends. It sets OnDisconnect, so opts
// must not.
func DialWatched(t testing.TB, template, channel string, opts ...bus.Option) *Watched {
	t.Helper()
	w := &Watched{}
	opts = append([]bus.Option{bus.SocketTemplate(template), bus.Name(t.Name())}, opts...)
	opts = append(opts, bus.OnDisconnect(func(error) { w.drops.Add(1) }))
	c, err := bus.Dial(context.Background(), channel, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", channel, err)
	}
	t.Cleanup(func() { c.Close() })
	w.Client, w.FirstID = c, c.ID()
	return w
}

// DialWatched connects a Watched client to one of the server's channels.
func (ts *Server) DialWatched(t testing.TB, channel string, opts ...bus.Option) *Watched {
	t.Helper()
	return DialWatched(t, ts.Template, channel, opts...)
}

// Drops is how many times the client's connection broke.
func (w *Watched) Drops() int { return int(w.drops.Load()) }

// CheckKept fails the test unless w still has the connection it was
// dialed on, as the server at the socket template sees it: an event w
// emits now reaches another client of its channel sent from FirstID,
// the server's control channel lists FirstID among the channel's
// clients, and the connection never broke.
func (w *Watched) CheckKept(t testing.TB, template string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe, err := bus.Dial(ctx, w.Channel(), bus.SocketTemplate(template), bus.Name("kept-probe"), bus.Reconnect(false))
	if err != nil {
		t.Fatalf("dial %s to check a client's connection: %v", w.Channel(), err)
	}
	defer probe.Close()
	marker := "kept-" + uuid.NewString()
	heard := make(chan bus.Message, 1)
	if _, err := probe.Once(marker, func(m bus.Message) { heard <- m }); err != nil {
		t.Fatal(err)
	}
	if err := w.Emit(marker, nil); err != nil {
		t.Errorf("the client's emit: %v", err)
	}
	select {
	case m := <-heard:
		if m.Sender != w.FirstID {
			t.Errorf("the client's event came from %v, not from its first connection %v: the connection broke", m.Sender, w.FirstID)
		}
	case <-ctx.Done():
		t.Errorf("the client's event never reached channel %s", w.Channel())
	}
	ctl, err := bus.Dial(ctx, router.ControlChannel, bus.SocketTemplate(template), bus.Name("kept-probe"), bus.Reconnect(false))
	if err != nil {
		t.Fatalf("dial the control channel: %v", err)
	}
	defer ctl.Close()
	ans := Control(t, ctl, "showchannel", map[string]any{"channel": w.Channel()})
	clients, _ := ans["clients"].([]any)
	ids := make([]string, 0, len(clients))
	for _, c := range clients {
		if m, ok := c.(map[string]any); ok {
			id, _ := m["id"].(string)
			ids = append(ids, id)
		}
	}
	if !slices.Contains(ids, w.FirstID.String()) {
		t.Errorf("the server's clients of %s are %v, without the client's first connection %v (answer %v)", w.Channel(), ids, w.FirstID, ans)
	}
	if n := w.Drops(); n != 0 || w.ID() != w.FirstID {
		t.Errorf("the client's connection broke %d times; its id is %v, was %v", n, w.ID(), w.FirstID)
	}
}

// CheckKept is Watched.CheckKept on this server.
func (ts *Server) CheckKept(t testing.TB, w *Watched) {
	t.Helper()
	w.CheckKept(t, ts.Template)
}
