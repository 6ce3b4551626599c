package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestNetwork runs two ncserver processes with connecttonet true in the
// test's private network namespace: each lists the other among its peers,
// and an event crosses from each to the other.
func TestNetwork(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	type server struct {
		p    *proc
		tmpl bus.Option
		ctl  *bus.Client
		a    *bus.Client
		rec  *routertest.Recorder
	}
	servers := make([]*server, 2)
	for i := range servers {
		rt := routertest.ShortTempDir(t)
		conf := filepath.Join(rt, "nc.json")
		text := fmt.Sprintf(`{
  "connecttonet": true, "interface": %q, "port": %d, "cluster": "ncserver-test",
  "heartbeat": "50ms", "peertimeout": "300ms",
  "channels": {"A": {"propagatetonet": true}},
}`, mcasttest.Interface, port)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &server{p: start(t, rt, conf), tmpl: bus.SocketTemplate(filepath.Join(rt, "netcluster", "{channel}.sock"))}
		waitForLog(t, s.p, "channel=control socket=")
		s.ctl = dial(t, "control", s.tmpl)
		s.a = dial(t, "A", s.tmpl)
		s.rec = routertest.Record(t, s.a, ".*")
		servers[i] = s
	}

	// Each lists the other as its one peer, by the other's pid.
	for i, s := range servers {
		other := servers[1-i].p.cmd.Process.Pid
		deadline := time.Now().Add(20 * time.Second)
		for {
			ans := routertest.Control(t, s.ctl, "peers", nil)
			peers, _ := ans["peers"].([]any)
			if ans["network"] == true && len(peers) == 1 {
				p, _ := peers[0].(map[string]any)
				if fmt.Sprint(p["pid"]) != strconv.Itoa(other) {
					t.Fatalf("server %d's peer has pid %v, want %d: %v", i+1, p["pid"], other, p)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server %d never listed the other as its peer: %v", i+1, ans)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if err := servers[0].a.Emit("there", "from 1"); err != nil {
		t.Fatal(err)
	}
	if err := servers[1].a.Emit("back", "from 2"); err != nil {
		t.Fatal(err)
	}
	servers[1].rec.WaitCount(t, "there", 1)
	servers[0].rec.WaitCount(t, "back", 1)
	for i, want := range []string{"from 2", "from 1"} {
		msgs := servers[i].rec.Messages()
		var got string
		for _, m := range msgs {
			if m.Sender != servers[i].a.ID() {
				m.Decode(&got)
			}
		}
		if got != want {
			t.Errorf("server %d's client heard %q from the other, want %q", i+1, got, want)
		}
	}

	for _, s := range servers {
		s.p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, s := range servers {
		if code := s.p.exit(t); code != 0 {
			t.Errorf("server %d: exit status %d", i+1, code)
		}
	}
}

// dial connects a client that is closed when the test ends.
func dial(t *testing.T, channel string, opts ...bus.Option) *bus.Client {
	t.Helper()
	c, err := bus.Dial(context.Background(), channel, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", channel, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
