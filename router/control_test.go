package router_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// num reads a number from a decoded answer, whatever width msgpack gave
// it; it fails the test for anything else.
func num(t testing.TB, v any) int64 {
	t.Helper()
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint())
	}
	t.Fatalf("want a number, got %T %v", v, v)
	return 0
}

// get walks a decoded answer along keys (map keys, or decimal indexes
// of arrays).
func get(t testing.TB, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				t.Fatalf("answer has no %s: %v", strings.Join(keys[:i+1], "."), x)
			}
		case []any:
			var n int
			if _, err := fmt.Sscan(k, &n); err != nil || n >= len(x) {
				t.Fatalf("answer has no %s: %v", strings.Join(keys[:i+1], "."), x)
			}
			v = x[n]
		default:
			t.Fatalf("answer: %s is a %T, not a map or array", strings.Join(keys[:i], "."), v)
		}
	}
	return v
}

func TestControlRequests(t *testing.T) {
	ts := routertest.NewServer(t, `"key": "sekret-value", "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	ctl := ts.Dial(t, router.ControlChannel, bus.Name("ctl"))
	// beta listens to everything, so that a client of protocol version 4
	// is sent A's events too.
	routertest.Record(t, ts.Dial(t, "B", bus.Name("beta")), ".*")
	// alpha runs in a process of its own, so that the pids the server
	// reports for it can only be alpha's, not the server's.
	alpha := routertest.StartChild(t, ts.Template, "A", "alpha", 3)
	routertest.WaitFor(t, "three events counted on A", func() bool {
		for _, ci := range ts.Channels() {
			if ci.Name == "A" {
				return ci.Stats.EventsIn == 3
			}
		}
		return false
	})
	alphaID := alpha.ID.String()

	tests := []struct {
		name  string
		cmd   string
		args  any
		check func(t *testing.T, ans map[string]any)
	}{
		{"showconfig", "showconfig", nil, func(t *testing.T, ans map[string]any) {
			if got := get(t, ans, "config", "socket"); got != ts.Template {
				t.Errorf("config.socket = %v, want %s", got, ts.Template)
			}
			if got := get(t, ans, "config", "key"); got != "(set)" {
				t.Errorf("config.key = %v, want (set)", got)
			}
			if got := get(t, ans, "config", "channels", "A", "propagatetochannels"); got != "B" {
				t.Errorf("A's rule = %v", got)
			}
			if got := get(t, ans, "config", "channels", "B", "propagatetochannels"); got != false {
				t.Errorf("B's rule = %v, want false", got)
			}
			if get(t, ans, "config", "socketmode") != "0660" || get(t, ans, "file") != "test.json" {
				t.Errorf("answer: %v", ans)
			}
		}},
		{"showchannel", "showchannel", map[string]any{"channel": "A"}, func(t *testing.T, ans map[string]any) {
			if get(t, ans, "socket") != ts.Path("A") || get(t, ans, "mode") != "0660" || get(t, ans, "propagatetochannels") != "B" {
				t.Errorf("answer: %v", ans)
			}
			if got := fmt.Sprint(get(t, ans, "targets")); got != "[B]" {
				t.Errorf("targets = %s, want [B]", got)
			}
			if n := num(t, get(t, ans, "stats", "events_in")); n != 3 {
				t.Errorf("stats.events_in = %d, want 3", n)
			}
			c := get(t, ans, "clients", "0")
			if get(t, c, "name") != "alpha" || get(t, c, "id") != alphaID {
				t.Errorf("client: %v", c)
			}
		}},
		{"showclient by prefix", "showclient", map[string]any{"id": alphaID[:8]}, func(t *testing.T, ans map[string]any) {
			if get(t, ans, "id") != alphaID || get(t, ans, "channel") != "A" || get(t, ans, "name") != "alpha" {
				t.Errorf("answer: %v", ans)
			}
			if pid := num(t, get(t, ans, "pid")); pid != int64(alpha.PID) {
				t.Errorf("pid = %d, want alpha's %d (from the socket's peer credentials; the server's is %d)", pid, alpha.PID, os.Getpid())
			}
			if uid := num(t, get(t, ans, "uid")); uid != int64(os.Getuid()) {
				t.Errorf("uid = %d, want %d", uid, os.Getuid())
			}
			if n := num(t, get(t, ans, "hello_pid")); n != int64(alpha.PID) {
				t.Errorf("hello_pid = %d, want alpha's %d", n, alpha.PID)
			}
			if n := num(t, get(t, ans, "events_in")); n != 3 {
				t.Errorf("events_in = %d, want 3", n)
			}
			since, err := time.Parse(time.RFC3339Nano, get(t, ans, "since").(string))
			if err != nil || time.Since(since) < 0 || time.Since(since) > time.Minute {
				t.Errorf("since = %v, %v", since, err)
			}
		}},
		{"showclient on its channel", "showclient", map[string]any{"id": alphaID, "channel": "A"}, func(t *testing.T, ans map[string]any) {
			if get(t, ans, "id") != alphaID {
				t.Errorf("answer: %v", ans)
			}
		}},
		{"showclient on another channel", "showclient", map[string]any{"id": alphaID, "channel": "B"}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, "no client "+alphaID+" on channel B")
		}},
		{"showclient prefix too short", "showclient", map[string]any{"id": "ab"}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, "at least 4 characters")
		}},
		{"clientcount", "clientcount", nil, func(t *testing.T, ans map[string]any) {
			if n := num(t, get(t, ans, "total")); n != 3 {
				t.Errorf("total = %d, want 3", n)
			}
			if n := num(t, get(t, ans, "channels", "control")); n != 1 {
				t.Errorf("control = %d, want 1", n)
			}
		}},
		{"clientcount of a channel", "clientcount", map[string]any{"channel": "B"}, func(t *testing.T, ans map[string]any) {
			if n := num(t, get(t, ans, "total")); n != 1 || len(get(t, ans, "channels").(map[string]any)) != 1 {
				t.Errorf("answer: %v", ans)
			}
		}},
		{"clientcount of no channel", "clientcount", map[string]any{"channel": "Z"}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `no channel "Z"`)
		}},
		{"channels", "channels", nil, func(t *testing.T, ans map[string]any) {
			var names []string
			for _, c := range get(t, ans, "channels").([]any) {
				names = append(names, get(t, c, "name").(string))
			}
			if got := strings.Join(names, ","); got != "A,B,control" {
				t.Errorf("channels = %s", got)
			}
			if get(t, ans, "channels", "2", "mode") != "0600" {
				t.Errorf("control's mode: %v", get(t, ans, "channels", "2"))
			}
		}},
		{"peers", "peers", nil, func(t *testing.T, ans map[string]any) {
			if get(t, ans, "network") != false || len(get(t, ans, "peers").([]any)) != 0 {
				t.Errorf("answer: %v", ans)
			}
		}},
		{"stats", "stats", nil, func(t *testing.T, ans map[string]any) {
			if n := num(t, get(t, ans, "channels", "A", "events_in")); n != 3 {
				t.Errorf("A events_in = %d, want 3", n)
			}
			// Each event on A went to B's one client, and nowhere else.
			if n := num(t, get(t, ans, "channels", "B", "frames_out")); n != 3 {
				t.Errorf("B frames_out = %d, want 3", n)
			}
			if n := num(t, get(t, ans, "total", "clients")); n != 3 {
				t.Errorf("total clients = %d, want 3", n)
			}
			if _, ok := get(t, ans, "uptime").(float64); !ok {
				t.Errorf("uptime: %v", get(t, ans, "uptime"))
			}
			// Off the network, network shows connected alone.
			if nw, ok := get(t, ans, "network").(map[string]any); !ok || len(nw) != 1 || nw["connected"] != false {
				t.Errorf("network: %v, want only connected: false", get(t, ans, "network"))
			}
		}},
		{"loglevel", "loglevel", nil, func(t *testing.T, ans map[string]any) {
			if get(t, ans, "level") != "debug" {
				t.Errorf("answer: %v", ans)
			}
		}},
		{"loglevel bad", "loglevel", map[string]any{"level": "loud"}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `level "loud": want debug, info, warn or error`)
		}},
		{"unknown request", "frobnicate", nil, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `unknown control request "frobnicate"; known: channels, clientcount,`)
		}},
		{"unknown argument", "stats", map[string]any{"verbose": true}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `stats: unknown argument "verbose"; known: none`)
		}},
		{"arguments not a map", "clientcount", "A", func(t *testing.T, ans map[string]any) {
			wantError(t, ans, "want nil or a map with string keys, got string")
		}},
		{"argument of the wrong type", "showchannel", map[string]any{"channel": 7}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `argument "channel" is required`)
		}},
		{"missing argument", "showchannel", nil, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `showchannel: argument "channel" is required`)
		}},
		{"no such channel", "showchannel", map[string]any{"channel": "Z"}, func(t *testing.T, ans map[string]any) {
			wantError(t, ans, `no channel "Z"; channels: A, B, control`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, routertest.Control(t, ctl, tt.cmd, tt.args))
		})
	}
	if strings.Contains(ts.Logs.String(), "sekret-value") {
		t.Error("the key's value is in the server's log")
	}
}

// wantError checks that a control answer is a failure whose error
// contains text, and holds nothing else.
func wantError(t *testing.T, ans map[string]any, text string) {
	t.Helper()
	msg, ok := ans["error"].(string)
	if !ok || !strings.Contains(msg, text) {
		t.Errorf("error = %q, want it to contain %q (answer %v)", msg, text, ans)
	}
	if len(ans) != 1 {
		t.Errorf("a failed answer holds only error: %v", ans)
	}
}

// TestControlShowConfigNeverShowsKey checks the raw bytes of the answer:
// the key's value appears nowhere in them.
func TestControlShowConfigNeverShowsKey(t *testing.T) {
	ts := routertest.NewServer(t, `"key": "sekret-value"`)
	ctl := ts.Dial(t, router.ControlChannel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := ctl.Request(ctx, "nc-control-showconfig", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(reply.Data, []byte("sekret")) {
		t.Errorf("showconfig's answer holds the key: %q", reply.Data)
	}
}

// TestControlAnswersAskerOnly: the answer goes to the client that asked,
// and the request itself goes to nobody.
func TestControlAnswersAskerOnly(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": ".*"}}`)
	other := ts.Dial(t, router.ControlChannel, bus.Name("other"))
	heard := routertest.Record(t, other, ".*")
	onA := routertest.Record(t, ts.Dial(t, "A"), ".*")
	asker := ts.Dial(t, router.ControlChannel, bus.Name("asker"))
	ans := routertest.Control(t, asker, "clientcount", nil)
	if n := num(t, ans["total"]); n != 3 {
		t.Errorf("total = %d, want 3", n)
	}
	routertest.Fence(t, ts, router.ControlChannel, heard)
	routertest.Fence(t, ts, "A", onA)
	for _, r := range []*routertest.Recorder{heard, onA} {
		for _, e := range r.Events() {
			if strings.HasPrefix(e, router.ControlPrefix) {
				t.Errorf("another client heard %s", e)
			}
		}
	}
}

func TestControlLogLevel(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {}`)
	ctl := ts.Dial(t, router.ControlChannel)
	ans := routertest.Control(t, ctl, "loglevel", map[string]any{"level": "warn"})
	if ans["level"] != "warn" || ans["previous"] != "debug" {
		t.Errorf("answer: %v", ans)
	}
	if got := ts.Level.Level(); got != slog.LevelWarn {
		t.Errorf("level is %v, want WARN", got)
	}
	before := len(ts.Logs.String())
	ts.Dial(t, "control").Close() // would log "client connected" at debug
	routertest.Control(t, ctl, "stats", nil)
	if logged := ts.Logs.String()[before:]; strings.Contains(logged, "level=DEBUG") {
		t.Errorf("debug lines logged at level warn:\n%s", logged)
	}
	ans = routertest.Control(t, ctl, "loglevel", map[string]any{"level": "DEBUG"})
	if ans["level"] != "debug" || ans["previous"] != "warn" {
		t.Errorf("answer: %v", ans)
	}
}

// TestControlLogLevelFixed: a server given no LevelVar says it cannot.
func TestControlLogLevelFixed(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	cfg, err := router.Parse("t.json", []byte(`{"socket": "`+dir+`/{channel}.sock"}`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctl, err := bus.Dial(context.Background(), router.ControlChannel, bus.SocketTemplate(dir+"/{channel}.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	wantError(t, routertest.Control(t, ctl, "loglevel", nil), "cannot be changed while it runs")
}

func TestControlShutdown(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	errs := make(chan error, 4)
	ctl := ts.Dial(t, router.ControlChannel, bus.ErrorHandler(func(err error) { errs <- err }))
	onA := ts.Dial(t, "A", bus.Reconnect(false))
	ans := routertest.Control(t, ctl, "shutdown", nil)
	if ans["ok"] != true {
		t.Errorf("answer: %v", ans)
	}
	select {
	case <-ts.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	<-onA.Done()
	if err := <-errs; !isCode(err, bus.CodeShutdown) {
		t.Errorf("the asker heard %v, want a shutdown error frame", err)
	}
	if _, err := os.Stat(ts.Path("A")); !os.IsNotExist(err) {
		t.Errorf("socket A is still there: %v", err)
	}
}

func isCode(err error, code bus.ErrorCode) bool {
	se, ok := err.(*bus.ServerError)
	return ok && se.Code == code
}
