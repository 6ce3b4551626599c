package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router/routertest"
)

// responder answers every "get" it hears with the data "got <data>".
func responder(t *testing.T, c *bus.Client) {
	t.Helper()
	if _, err := c.On("get", func(m bus.Message) {
		var s string
		m.Decode(&s)
		if err := c.Reply(m, "got "+s); err != nil {
			t.Errorf("reply: %v", err)
		}
	}); err != nil {
		t.Fatal(err)
	}
}

func request(t *testing.T, c *bus.Client, data string) bus.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Request(ctx, "get", data)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return m
}

func stats(t *testing.T, ts *routertest.Server, name string) channel.Stats {
	t.Helper()
	for _, ci := range ts.Channels() {
		if ci.Name == name {
			return ci.Stats
		}
	}
	t.Fatalf("no channel %s", name)
	return channel.Stats{}
}

// TestRequestReply: the reply reaches the asker and nobody else, on the
// asker's channel and across a propagation rule.
func TestRequestReply(t *testing.T) {
	tests := []struct {
		name     string
		channels string
		server   string // the responder's channel; the asker is on A
	}{
		{"same channel", `{"A": {}}`, "A"},
		{"request propagated to the responder's channel", `{"A": {"propagatetochannels": "B"}, "B": {}}`, "B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := routertest.NewServer(t, `"channels": `+tt.channels)
			responder(t, ts.Dial(t, tt.server, bus.Name("responder")))
			asker := ts.Dial(t, "A", bus.Name("asker"))
			askerHeard := routertest.Record(t, asker, ".*")
			bystanders := map[string]*routertest.Recorder{}
			for _, ch := range []string{"A", tt.server} {
				bystanders[ch] = routertest.Record(t, ts.Dial(t, ch, bus.Name("bystander")), ".*")
			}

			for _, data := range []string{"one", "two"} {
				m := request(t, asker, data)
				var got string
				if err := m.Decode(&got); err != nil || got != "got "+data {
					t.Errorf("reply data = %q, %v; want %q", got, err, "got "+data)
				}
				if m.Event != "get-response" || m.To != asker.ID() || m.InReplyTo == uuid.Nil || m.Channel != tt.server {
					t.Errorf("reply = %+v", m)
				}
			}
			for ch, r := range bystanders {
				routertest.Fence(t, ts, ch, r)
				if n := r.Count("get-response"); n != 0 {
					t.Errorf("a bystander on %s heard %d replies", ch, n)
				}
				if ch == tt.server && r.Count("get") != 2 {
					t.Errorf("a bystander on %s heard %d requests, want 2", ch, r.Count("get"))
				}
			}
			routertest.Fence(t, ts, "A", askerHeard)
			if n := askerHeard.Count("get-response"); n != 0 {
				t.Errorf("the asker's listeners also got %d replies; Request takes them", n)
			}
			if n := stats(t, ts, tt.server).Undeliverable; n != 0 {
				t.Errorf("undeliverable = %d", n)
			}
		})
	}
}

// TestReplyToGoneClient: a reply whose asker has left is dropped and
// counted.
func TestReplyToGoneClient(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	held := make(chan bus.Message, 1)
	srv := ts.Dial(t, "A", bus.Name("responder"))
	if _, err := srv.On("get", func(m bus.Message) { held <- m }); err != nil {
		t.Fatal(err)
	}
	asker := ts.Dial(t, "A", bus.Name("asker"))
	if err := asker.Emit("get", nil); err != nil {
		t.Fatal(err)
	}
	m := <-held
	asker.Close()
	routertest.WaitFor(t, "the asker to leave", func() bool { return stats(t, ts, "A").Clients == 1 })
	if err := srv.Reply(m, "late"); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "the reply to be counted", func() bool { return stats(t, ts, "A").Undeliverable == 1 })
}

// TestReplyNotAcrossUnrelatedChannels: an addressed event reaches only
// clients on the sender's channel or on channels that propagate to it.
func TestReplyNotAcrossUnrelatedChannels(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": "B"}, "B": {}, "C": {}}`)
	onB := ts.Dial(t, "B")
	heard := routertest.Record(t, onB, ".*")
	fromC := ts.Dial(t, "C")
	fake := bus.Message{ID: uuid.New(), Sender: onB.ID(), Event: "x"}
	if err := fromC.Reply(fake, nil); err != nil { // C does not reach B
		t.Fatal(err)
	}
	fromA := ts.Dial(t, "A")
	if err := fromA.Reply(fake, nil); err != nil { // A does not receive from B
		t.Fatal(err)
	}
	routertest.WaitFor(t, "both counted", func() bool {
		return stats(t, ts, "C").Undeliverable == 1 && stats(t, ts, "A").Undeliverable == 1
	})
	routertest.Fence(t, ts, "B", heard)
	if n := heard.Count("x-response"); n != 0 {
		t.Errorf("B heard %d addressed events it could not have asked for", n)
	}
}

func TestRequestEnds(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	c := ts.Dial(t, "A")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Request(ctx, "nobody-answers", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request without a responder: %v, want context.DeadlineExceeded", err)
	}

	// The connection ends while a request waits.
	c2 := ts.Dial(t, "A")
	errc := make(chan error, 1)
	go func() {
		_, err := c2.Request(context.Background(), "nobody-answers", nil)
		errc <- err
	}()
	routertest.WaitFor(t, "the request to arrive", func() bool { return stats(t, ts, "A").EventsIn == 2 })
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := ts.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("request when the server went: %v, want ErrDisconnected", err)
	}
	c2.Close()
	if _, err := c2.Request(context.Background(), "x", nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("request after Close: %v, want ErrClosed", err)
	}
	if err := c2.Reply(bus.Message{Event: "x"}, nil); err == nil {
		t.Error("Reply to a message without sender or id: no error")
	}
}
