//go:build unix

package main

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestClientsSurviveRestart stops a real ncserver with SIGTERM under a
// publisher and a subscriber that keep running, and starts another on
// the same sockets. Both clients connect again on their own, and the
// subscriber hears every event the publisher emitted, exactly once and
// in order: the stopping server reads all the publisher wrote (it
// drains it) and delivers it before it closes; events emitted while the
// server was down are buffered by the publisher and sent once it is
// back; and the subscriber, whichever of the two reconnects first, gets
// from the new server's ring of retained events what came before it
// did.
func TestClientsSurviveRestart(t *testing.T) {
	rt := routertest.ShortTempDir(t)
	p := start(t, rt)
	waitForLog(t, p, "channel=A socket=")
	tmpl := bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock"))
	backoff := bus.ReconnectBackoff(20*time.Millisecond, 100*time.Millisecond)
	var reconnects atomic.Int32
	dial := func(name string) *bus.Client {
		c, err := bus.Dial(context.Background(), "A", tmpl, bus.Name(name), backoff,
			bus.OnReconnect(func() { reconnects.Add(1) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var (
		mu        sync.Mutex
		got       []int
		disorder  int
		published atomic.Int64
	)
	sub := dial("subscriber")
	sub.On("n", func(m bus.Message) {
		var i int
		if err := m.Decode(&i); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) > 0 && i <= got[len(got)-1] {
			disorder++
		}
		got = append(got, i)
	})
	heard := func() (n, last int) {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return 0, -1
		}
		return len(got), got[len(got)-1]
	}
	pub := dial("publisher")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if err := pub.Emit("n", i); err != nil {
				t.Errorf("emit %d: %v", i, err)
				return
			}
			published.Store(int64(i + 1))
		}
	})
	defer func() {
		if stop != nil {
			close(stop)
			wg.Wait()
		}
	}()

	routertest.WaitFor(t, "events before the restart", func() bool { n, _ := heard(); return n >= 100 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Fatalf("ncserver exited with %d", code)
	}
	_, lastBefore := heard()
	down := published.Load()
	time.Sleep(200 * time.Millisecond) // the publisher buffers meanwhile
	p2 := start(t, rt)
	waitForLog(t, p2, "channel=A socket=")
	routertest.WaitFor(t, "both clients to reconnect", func() bool { return reconnects.Load() >= 2 })
	after := published.Load() + 100
	routertest.WaitFor(t, "events after the restart", func() bool { _, last := heard(); return int64(last) >= after })

	close(stop)
	wg.Wait()
	stop = nil
	total := published.Load()
	routertest.WaitFor(t, "every event", func() bool { n, _ := heard(); return int64(n) >= total })
	n, last := heard()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("heard %d of %d events, the last %d; the last before the restart was %d, %d had been emitted when the server stopped",
		n, total, last, lastBefore, down)
	if disorder != 0 {
		t.Errorf("%d events arrived out of order or twice", disorder)
	}
	if int64(n) != total {
		t.Errorf("heard %d events, %d emitted: %d lost", n, total, total-int64(n))
	}
	if sub.Err() != nil || pub.Err() != nil {
		t.Errorf("a client ended: subscriber %v, publisher %v", sub.Err(), pub.Err())
	}
}
