package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRequestConcurrent: many requests at once from one client each get
// their own answer.
func TestRequestConcurrent(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	srv := ts.Dial(t, "A")
	if _, err := srv.On("double", func(m bus.Message) {
		var n int
		m.Decode(&n)
		srv.Reply(m, 2*n)
	}); err != nil {
		t.Fatal(err)
	}
	asker := ts.Dial(t, "A")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			m, err := asker.Request(ctx10s(t), "double", i)
			if err != nil {
				t.Error(err)
				return
			}
			var n int
			if err := m.Decode(&n); err != nil || n != 2*i {
				t.Errorf("double(%d) = %d, %v", i, n, err)
			}
		})
	}
	wg.Wait()
}

// TestRequestToSelf: a client's own listener hears its request, as with
// Emit, and its reply comes back to the client through the server.
func TestRequestToSelf(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	c := ts.Dial(t, "A")
	if _, err := c.On("whoami", func(m bus.Message) { c.Reply(m, m.Sender.String()) }); err != nil {
		t.Fatal(err)
	}
	m, err := c.Request(ctx10s(t), "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if m.Decode(&s); s != c.ID().String() {
		t.Errorf("answer %q, want the client's own id", s)
	}
}

// TestReplyToSelfOnce: a client that answers its own request twice gets
// the first reply from Request only, and the second once, as an
// ordinary event. (Before, the client handed both to its listeners at
// once as well: the first reached them, the second twice.)
func TestReplyToSelfOnce(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	c := ts.Dial(t, "A")
	if _, err := c.On("get", func(m bus.Message) {
		c.Reply(m, 1)
		c.Reply(m, 2)
	}); err != nil {
		t.Fatal(err)
	}
	resp := routertest.Record(t, c, "get-response")
	m, err := c.Request(ctx10s(t), "get", nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if m.Decode(&n); n != 1 {
		t.Errorf("Request returned %d, want 1", n)
	}
	resp.WaitCount(t, "get-response", 1)
	// A marker from another client comes after the server's copy of
	// the second reply: whatever was to come has come.
	routertest.Fence(t, ts, "A", routertest.Record(t, c, "fence-.*"))
	var got []int
	for _, m := range resp.Messages() {
		var v int
		m.Decode(&v)
		got = append(got, v)
	}
	if len(got) != 1 || got[0] != 2 {
		t.Errorf("the listeners heard the replies %v, want [2]: the first is Request's, the second an event, once", got)
	}
}

// TestRequestCtxWhileSendBufferFull: the server holds a publisher back (a
// stopped receiver, stalltimeout 30 s), so its send buffer stays full.
// A Request whose ctx ends meanwhile returns ctx's error then, not when
// room comes. (Before, the wait for room ignored ctx: the Request
// returned when the server dropped the stopped receiver.)
func TestRequestCtxWhileSendBufferFull(t *testing.T) {
	ts := routertest.NewServer(t, `"maxframe": 65536, "maxpending": 262144, "stalltimeout": "30s", "channels": {"A": {}}`)
	gate := make(chan struct{})
	stopped := ts.Dial(t, "A", bus.QueueLen(1))
	if _, err := stopped.On("blob", func(bus.Message) { <-gate }); err != nil {
		t.Fatal(err)
	}
	defer close(gate)
	pub := ts.Dial(t, "A", bus.SendBuffer(64<<10))
	// One event at a time, each flushed, until a flush does not end:
	// the server holds the publisher, its writer in a write.
	blob := make([]byte, 16<<10)
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("the server never held the publisher")
		}
		if err := pub.Emit("blob", blob); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := pub.Flush(ctx)
		cancel()
		if err != nil {
			break
		}
	}
	// One more behind the write under way: the request does not fit
	// beside it in the send buffer.
	if err := pub.Emit("blob", blob); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := pub.Request(ctx, "q", make([]byte, 60<<10))
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 10*time.Second {
		t.Errorf("Request with a 100 ms ctx returned %v after %v; want ctx's error when it ends", err, took.Round(time.Millisecond))
	}
}

// TestSecondReply: only the first reply answers a request; a second one
// is an ordinary event for the listeners.
func TestSecondReply(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	srv := ts.Dial(t, "A")
	if _, err := srv.On("get", func(m bus.Message) {
		srv.Reply(m, 1)
		srv.Reply(m, 2)
	}); err != nil {
		t.Fatal(err)
	}
	asker := ts.Dial(t, "A")
	extra := routertest.Record(t, asker, "get-response")
	m, err := asker.Request(ctx10s(t), "get", nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if m.Decode(&n); n != 1 {
		t.Errorf("Request returned reply %d, want the first", n)
	}
	extra.WaitCount(t, "get-response", 1)
	msgs := extra.Messages()
	if msgs[0].Decode(&n); n != 2 || msgs[0].InReplyTo != m.InReplyTo || msgs[0].To != asker.ID() {
		t.Errorf("the listener heard %v", msgs[0])
	}
}

// TestRequestFromListener: a listener may make a request and wait for
// it; the answer does not go through the dispatcher it is blocking.
func TestRequestFromListener(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	srv := ts.Dial(t, "A")
	srv.On("inner", func(m bus.Message) { srv.Reply(m, "inner answer") })
	c := ts.Dial(t, "A")
	done := make(chan string, 1)
	c.On("go", func(bus.Message) {
		m, err := c.Request(ctx10s(t), "inner", nil)
		if err != nil {
			done <- err.Error()
			return
		}
		var s string
		m.Decode(&s)
		done <- s
	})
	if err := srv.Emit("go", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if s != "inner answer" {
			t.Errorf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request made from a listener never returned")
	}
}

func TestRequestBadEvent(t *testing.T) {
	ts := routertest.NewServer(t, oneChannel)
	c := ts.Dial(t, "A")
	if _, err := c.Request(ctx10s(t), "", nil); err == nil {
		t.Error("empty event name: no error")
	}
	if _, err := c.Request(ctx10s(t), "x", make(chan int)); err == nil {
		t.Error("data msgpack cannot encode: no error")
	}
}
