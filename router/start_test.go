package router_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// freeAddr returns a loopback TCP address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestStartAllOrNone: when one step of Start fails, what the steps before
// it opened (sockets, the metrics listener) is closed again, no channel
// is logged as listening, and the error reads as Start's always have.
func TestStartAllOrNone(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares dir and returns the configuration's extra keys.
		setup func(t *testing.T, dir string) string
		// prefix is how the error begins.
		prefix string
	}{
		{
			name: "the network link fails",
			setup: func(t *testing.T, dir string) string {
				return fmt.Sprintf(`"keyfile": %q`, filepath.Join(dir, "missing"))
			},
			prefix: "router: keyfile: ",
		},
		{
			name: "a channel fails",
			setup: func(t *testing.T, dir string) string {
				if err := os.WriteFile(filepath.Join(dir, "B.sock"), []byte("precious"), 0o600); err != nil {
					t.Fatal(err)
				}
				return `"startcontrol": true`
			},
			prefix: `router: channel "B": `,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := routertest.ShortTempDir(t)
			metrics := freeAddr(t)
			text := fmt.Sprintf(`{"socket": %q, "metrics": %q, "channels": {"A": {}, "B": {}}, %s}`,
				dir+"/{channel}.sock", metrics, tt.setup(t, dir))
			cfg, err := router.Parse("test.json", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			logs := &routertest.LogBuffer{}
			srv, err := router.Start(cfg, router.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err == nil {
				srv.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Errorf("err = %q, want it to begin %q", err, tt.prefix)
			}
			for _, name := range []string{"A", "control"} {
				if _, err := os.Stat(filepath.Join(dir, name+".sock")); !os.IsNotExist(err) {
					t.Errorf("the failed start left socket %s: %v", name, err)
				}
			}
			ln, err := net.Listen("tcp", metrics)
			if err != nil {
				t.Errorf("the failed start kept the metrics address: %v", err)
			} else {
				ln.Close()
			}
			if strings.Contains(logs.String(), "channel listening") {
				t.Errorf("the failed start logged a channel as listening:\n%s", logs)
			}
		})
	}
}

// TestStartAnnouncesItsChannels: the first heartbeat of a server that
// starts, sent as it joins the group, possibly before Start has swapped
// its configuration in, lists the channels it serves. With a heartbeat of
// an hour, it is the only one the other server hears. (The window in
// which the heartbeat could read the empty configuration is short: this
// test catches a regression there only now and then.)
func TestStartAnnouncesItsChannels(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	members := func(channels string) string {
		return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "heartbeat": "1h", "peertimeout": "2h", %s`,
			mcasttest.Interface, port, channels)
	}
	s1 := routertest.NewServer(t, members(`"channels": {"A": {}}`))
	s2 := routertest.NewServer(t, members(`"channels": {"B": {}, "C": {}}`))
	routertest.WaitFor(t, "s1 to hear s2", func() bool { return len(s1.Peers()) == 1 })
	p := s1.Peers()[0]
	if want := []string{"B", "C", "control"}; p.Node != s2.Node() || !slices.Equal(p.Channels, want) {
		t.Errorf("s1 heard node %v announce %q, want %v announce %q", p.Node, p.Channels, s2.Node(), want)
	}
}
