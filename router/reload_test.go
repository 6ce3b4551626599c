package router_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// errorsOf collects what a client's ErrorHandler hears.
func errorsOf() (bus.Option, chan error) {
	ch := make(chan error, 16)
	return bus.ErrorHandler(func(err error) { ch <- err }), ch
}

func waitErr(t *testing.T, errs chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no error reported")
		return nil
	}
}

// TestReload changes rules, removes a channel and adds one: the clients
// of kept channels stay, and the new rules apply to the next event.
func TestReload(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": ".*"}, "B": {}, "C": {}}`)
	onA := ts.DialWatched(t, "A", bus.Name("a"))
	heardA := routertest.Record(t, onA.Client, ".*")
	onB := ts.DialWatched(t, "B", bus.Name("b"))
	heardB := routertest.Record(t, onB.Client, ".*")
	cOpt, cErrs := errorsOf()
	onC := ts.Dial(t, "C", bus.Name("c"), cOpt, bus.Reconnect(false))

	rep, err := ts.Reload(ts.ParseConfig(t, `"maxpending": 4194304, "channels": {"A": {"propagatetochannels": "D"}, "B": {}, "D": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := router.ReloadReport{File: "test.json", Added: []string{"D"}, Removed: []string{"C"},
		Changed: []string{"A"}, Settings: []string{"maxpending"}}
	if !reportEqual(rep, want) {
		t.Errorf("report = %+v, want %+v", rep, want)
	}
	if err := waitErr(t, cErrs); !isCode(err, bus.CodeChannelGone) || !strings.Contains(err.Error(), "channel C was removed") {
		t.Errorf("C's client heard %v, want error code ChannelGone", err)
	}
	<-onC.Done()
	if _, err := os.Stat(ts.Path("C")); !os.IsNotExist(err) {
		t.Errorf("C's socket is still there: %v", err)
	}

	heardD := routertest.Record(t, ts.Dial(t, "D"), ".*")
	if err := onA.Emit("after", nil); err != nil {
		t.Fatalf("A's client after the reload: %v", err)
	}
	if err := onB.Emit("from-b", nil); err != nil {
		t.Fatalf("B's client after the reload: %v", err)
	}
	heardD.WaitCount(t, "after", 1)
	routertest.Fence(t, ts, "B", heardB)
	routertest.Fence(t, ts, "A", heardA)
	if n := heardB.Count("after"); n != 0 {
		t.Errorf("B heard A's event under the new rule %d times", n)
	}
	// The clients of the kept channels kept their connections.
	ts.CheckKept(t, onA)
	ts.CheckKept(t, onB)
	var names []string
	for _, ci := range ts.Channels() {
		names = append(names, ci.Name)
	}
	if got := strings.Join(names, ","); got != "A,B,D,control" {
		t.Errorf("channels after the reload: %s", got)
	}
	if ts.Config().MaxPending != 4194304 {
		t.Errorf("Config() is not the new configuration")
	}
}

func reportEqual(a, b router.ReloadReport) bool {
	eq := func(x, y []string) bool { return len(x) == 0 && len(y) == 0 || slices.Equal(x, y) }
	return a.File == b.File && eq(a.Added, b.Added) && eq(a.Removed, b.Removed) && eq(a.Changed, b.Changed) &&
		eq(a.Reopened, b.Reopened) && eq(a.Settings, b.Settings)
}

// TestReloadInvalid: a file that does not validate, or cannot be opened,
// changes nothing, and the error names file, line and key.
func TestReloadInvalid(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	c := ts.DialWatched(t, "A")
	bad := filepath.Join(ts.Dir, "bad.json")
	os.WriteFile(bad, []byte("{\n  \"channels\": {\"A\": {}, \"B\": {}},\n  \"ttl\": 300\n}\n"), 0o600)
	_, err := ts.ReloadFile(bad)
	var ce *router.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConfigError", err)
	}
	if want := bad + ":3:10: ttl: 300 is out of range 0..255"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if _, err := ts.ReloadFile(filepath.Join(ts.Dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := ts.ReloadFile(""); err == nil || !strings.Contains(err.Error(), "must name a file") {
		t.Errorf("no start file: err = %v", err)
	}
	if len(ts.Channels()) != 2 {
		t.Errorf("channels changed: %+v", ts.Channels())
	}
	if _, err := os.Stat(ts.Path("B")); !os.IsNotExist(err) {
		t.Errorf("B was opened: %v", err)
	}
	ts.CheckKept(t, c)
}

// TestReloadAllOrNone: when one new channel cannot be opened, none is,
// and the running configuration stays.
func TestReloadAllOrNone(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	if err := os.WriteFile(ts.Path("Y"), []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := ts.Config()
	_, err := ts.Reload(ts.ParseConfig(t, `"channels": {"A": {}, "X": {}, "Y": {}}`))
	if err == nil || !strings.Contains(err.Error(), `channel "Y"`) {
		t.Fatalf("err = %v, want one naming channel Y", err)
	}
	if _, err := os.Stat(ts.Path("X")); !os.IsNotExist(err) {
		t.Errorf("X's socket was left behind: %v", err)
	}
	if ts.Config() != old || len(ts.Channels()) != 2 {
		t.Errorf("the configuration changed")
	}
}

// TestReloadSockets: a new socketmode applies in place; a new socket
// template moves the channels, whose clients are told where.
func TestReloadSockets(t *testing.T) {
	ts := routertest.NewServer(t, `"socketmode": "0660", "channels": {"A": {}}`)
	keep := ts.DialWatched(t, "A")
	rep, err := ts.Reload(ts.ParseConfig(t, `"socketmode": "0600", "channels": {"A": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Settings, []string{"socketmode"}) {
		t.Errorf("settings = %v", rep.Settings)
	}
	if fi, err := os.Stat(ts.Path("A")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("A's socket: %v, %v; want mode 0600", fi.Mode(), err)
	}
	ts.CheckKept(t, keep) // a mode change keeps the clients

	opt, errs := errorsOf()
	ts.Dial(t, "A", opt)
	newDir := routertest.ShortTempDir(t)
	cfg, err := router.Parse("moved.json", []byte(`{"socket": "`+newDir+`/{channel}.sock", "channels": {"A": {}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = ts.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Reopened, []string{"A", "control"}) {
		t.Errorf("reopened = %v", rep.Reopened)
	}
	if err := waitErr(t, errs); !isCode(err, bus.CodeChannelGone) || !strings.Contains(err.Error(), "moved to "+newDir+"/A.sock") {
		t.Errorf("the client heard %v", err)
	}
	if _, err := os.Stat(ts.Path("A")); !os.IsNotExist(err) {
		t.Errorf("the old socket is still there: %v", err)
	}
	c, err := busDial(newDir, "A")
	if err != nil {
		t.Fatalf("dial at the new path: %v", err)
	}
	c.Close()
}

// TestReloadSameSocketSpelledOtherwise: a socket template that names the
// same files another way (a "./" in the path, a symlink to the
// directory) keeps the channels and their clients; before, the reload
// took it for a move and failed, finding the socket in use by the
// server itself.
func TestReloadSameSocketSpelledOtherwise(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	keep := ts.DialWatched(t, "A")
	link := filepath.Join(routertest.ShortTempDir(t), "d")
	if err := os.Symlink(ts.Dir, link); err != nil {
		t.Fatal(err)
	}
	for _, template := range []string{ts.Dir + "/./{channel}.sock", link + "/{channel}.sock"} {
		cfg, err := router.Parse("same.json", []byte(`{"socket": "`+template+`", "channels": {"A": {}}}`))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ts.Reload(cfg)
		if err != nil {
			t.Fatalf("%s: %v", template, err)
		}
		if len(rep.Reopened) != 0 {
			t.Errorf("%s: reopened %v, want none", template, rep.Reopened)
		}
	}
	ts.CheckKept(t, keep)
}

// TestReloadThroughControl: reloadconfig answers with what changed, or
// with the problems of an invalid file; a reload that removes the control
// channel still answers before it closes.
func TestReloadThroughControl(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	opt, errs := errorsOf()
	ctl := ts.Dial(t, router.ControlChannel, opt)

	good := filepath.Join(ts.Dir, "good.json")
	os.WriteFile(good, []byte(`{"socket": "`+ts.Template+`", "channels": {"A": {"dumptoconsole": true}, "B": {}}}`), 0o600)
	ans := routertest.Control(t, ctl, "reloadconfig", map[string]any{"path": good})
	if get(t, ans, "file") != good || get(t, ans, "added", "0") != "B" || get(t, ans, "changed", "0") != "A" ||
		len(get(t, ans, "removed").([]any)) != 0 {
		t.Errorf("answer: %v", ans)
	}

	bad := filepath.Join(ts.Dir, "bad.json")
	os.WriteFile(bad, []byte("{\n\"channels\": {\"A\": {\"propagatetochannels\": \"(\"}}\n}"), 0o600)
	ans = routertest.Control(t, ctl, "reloadconfig", map[string]any{"path": bad})
	p := get(t, ans, "problems", "0")
	if get(t, p, "key") != "channels.A.propagatetochannels" || num(t, get(t, p, "line")) != 2 || get(t, p, "file") != bad {
		t.Errorf("problem: %v", p)
	}
	if msg, _ := ans["error"].(string); !strings.HasPrefix(msg, bad+":2:") {
		t.Errorf("error = %q", msg)
	}
	if len(ts.Channels()) != 3 {
		t.Errorf("an invalid file changed the channels")
	}

	off := filepath.Join(ts.Dir, "off.json")
	os.WriteFile(off, []byte(`{"socket": "`+ts.Template+`", "startcontrol": false, "channels": {"A": {}}}`), 0o600)
	ans = routertest.Control(t, ctl, "reloadconfig", map[string]any{"path": off})
	if get(t, ans, "removed", "1") != "control" {
		t.Errorf("answer: %v", ans)
	}
	if err := waitErr(t, errs); !isCode(err, bus.CodeChannelGone) {
		t.Errorf("the control client heard %v", err)
	}
}

func busDial(dir, ch string) (*bus.Client, error) {
	return bus.Dial(context.Background(), ch, bus.SocketTemplate(dir+"/{channel}.sock"))
}

// TestReloadUnderTraffic reloads again and again while a client emits:
// the clients of the kept channel lose nothing, in order.
func TestReloadUnderTraffic(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}, "B": {}}`)
	sub := ts.DialWatched(t, "A")
	got := make(chan int, 4096)
	if _, err := sub.On("n", func(m bus.Message) {
		var n int
		m.Decode(&n)
		got <- n
	}); err != nil {
		t.Fatal(err)
	}
	pub := ts.DialWatched(t, "A")
	const total = 1000
	done := make(chan error, 1)
	go func() {
		for i := range total {
			if err := pub.Emit("n", i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	rules := []string{`"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`, `"channels": {"A": {}, "B": {}, "C": {}}`}
	for i := range 6 {
		if _, err := ts.Reload(ts.ParseConfig(t, rules[i%2])); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for want := range total {
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("got event %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d never arrived", want)
		}
	}
	ts.CheckKept(t, sub)
	ts.CheckKept(t, pub)
}

// TestShutdownDuringReload: a reload asked for just before Shutdown
// either happens or is refused; nothing hangs and nothing leaks.
func TestShutdownDuringReload(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	ctl := ts.Dial(t, router.ControlChannel)
	good := filepath.Join(ts.Dir, "good.json")
	os.WriteFile(good, []byte(`{"socket": "`+ts.Template+`", "channels": {"B": {}}}`), 0o600)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctl.Request(ctx, router.ControlPrefix+"reloadconfig", map[string]any{"path": good})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-answered
	if _, err := ts.Reload(ts.ParseConfig(t, `"channels": {}`)); !errors.Is(err, router.ErrClosed) {
		t.Errorf("Reload after Shutdown: %v, want ErrClosed", err)
	}
	if ents, _ := os.ReadDir(ts.Dir); len(ents) != 1 { // good.json
		t.Errorf("left in the socket directory: %v", ents)
	}
}

// TestReloadReportsNetworkTimers: the reload report names every key that
// changed, the network's timers and datagram size among them.
func TestReloadReportsNetworkTimers(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	rep, err := ts.Reload(ts.ParseConfig(t, `"heartbeat": "2s", "peertimeout": "20s", "payload": 1200, "channels": {"A": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"heartbeat", "payload", "peertimeout"}; !slices.Equal(rep.Settings, want) {
		t.Errorf("settings = %v, want %v", rep.Settings, want)
	}
}
