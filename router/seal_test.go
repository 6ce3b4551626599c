package router_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// writeKey writes a key file with the given contents and mode in a fresh
// directory and returns its path.
func writeKey(t *testing.T, contents string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(path, []byte(contents), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// netStats asks a server for its stats and returns their network part.
func netStats(t *testing.T, s *routertest.Server) map[string]any {
	t.Helper()
	ctl := s.Dial(t, router.ControlChannel)
	defer ctl.Close()
	n, _ := routertest.Control(t, ctl, "stats", nil)["network"].(map[string]any)
	return n
}

// count reads a counter of a stats map.
func count(m map[string]any, key string) int {
	var n int
	fmt.Sscan(fmt.Sprint(m[key]), &n)
	return n
}

// noSecretIn fails the test if any of the texts holds one of the secrets.
func noSecretIn(t *testing.T, texts map[string]string, secrets ...string) {
	t.Helper()
	for name, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %q", name, s)
			}
		}
	}
}

// TestNetSealedServers runs three servers: two with one key, in a key
// file and in the configuration, hear each other; the third, with another
// key, hears neither, and says so once per sender. No log, showconfig
// answer or metric shows a key.
func TestNetSealedServers(t *testing.T) {
	port := mcasttest.Port()
	const fileSecret, otherSecret = "the-cluster-secret", "another-secret"
	keyfile := writeKey(t, fileSecret+"\n", 0o600)
	chans := `"metrics": "127.0.0.1:0", "channels": {"A": {"propagatetonet": true}}`
	s1 := netServer(t, port, "t", fmt.Sprintf(`"keyfile": %q, %s`, keyfile, chans))
	s2 := netServer(t, port, "t", fmt.Sprintf(`"key": %q, %s`, fileSecret, chans))
	s3 := netServer(t, port, "t", fmt.Sprintf(`"key": %q, %s`, otherSecret, chans))
	waitPeers(t, s1, s2)
	a1, a2, a3 := s1.Dial(t, "A"), s2.Dial(t, "A"), s3.Dial(t, "A")
	rec1, rec2, rec3 := routertest.Record(t, a1, ".*"), routertest.Record(t, a2, ".*"), routertest.Record(t, a3, ".*")

	for _, c := range []struct {
		name string
		emit func(string, any) error
	}{{"one", a1.Emit}, {"two", a2.Emit}, {"three", a3.Emit}} {
		if err := c.emit(c.name, c.name); err != nil {
			t.Fatal(err)
		}
	}
	rec2.WaitCount(t, "one", 1)
	rec1.WaitCount(t, "two", 1)
	routertest.WaitFor(t, "s3 to refuse s1's and s2's datagrams", func() bool { return int(s3.NetStats().Link.Forged) >= 2 })
	routertest.WaitFor(t, "s1 to refuse s3's datagrams", func() bool { return int(s1.NetStats().Link.Forged) >= 1 })
	routertest.Fence(t, s1, "A", rec1)
	routertest.Fence(t, s3, "A", rec3)
	if n := rec1.Count("three") + rec2.Count("three") + rec3.Count("one") + rec3.Count("two"); n != 0 {
		t.Errorf("%d events crossed between servers with different keys", n)
	}
	if p := s3.Peers(); len(p) != 0 {
		t.Errorf("s3 lists peers %v", p)
	}
	const says = "fails authentication: is its key different?"
	if n := strings.Count(s3.Logs.String(), says); n != 2 {
		t.Errorf("s3 said %q %d times, want once for each of s1 and s2:\n%s", says, n, s3.Logs)
	}
	for _, s := range []*routertest.Server{s1, s2} {
		if !strings.Contains(s.Logs.String(), "sealed=true") {
			t.Errorf("the log does not say the link seals:\n%s", s.Logs)
		}
	}
	n1 := netStats(t, s1)
	if count(n1, "unsealed")+count(n1, "sealed")+count(n1, "replayed") != 0 {
		t.Errorf("s1's stats: %v", n1)
	}
	metrics := scrape(t, s3, "/metrics")
	if !strings.Contains(metrics, `netcluster_net_seal_dropped_total{reason="forged"}`) {
		t.Error("the metrics lack the datagrams dropped by sealing")
	}
	texts := map[string]string{"s1's log": s1.Logs.String(), "s2's log": s2.Logs.String(), "s3's log": s3.Logs.String(), "s3's metrics": metrics}
	for name, s := range map[string]*routertest.Server{"s1": s1, "s2": s2, "s3": s3} {
		ctl := s.Dial(t, router.ControlChannel)
		texts[name+"'s showconfig"] = fmt.Sprint(routertest.Control(t, ctl, "showconfig", nil))
		texts[name+"'s stats"] = fmt.Sprint(routertest.Control(t, ctl, "stats", nil))
	}
	noSecretIn(t, texts, fileSecret, otherSecret)
}

// TestNetKeyAndNoKey runs a server with a key beside one without: neither
// hears the other, and each says why once.
func TestNetKeyAndNoKey(t *testing.T) {
	port := mcasttest.Port()
	chans := `"channels": {"A": {"propagatetonet": true}}`
	keyed := netServer(t, port, "t", `"key": "k3y-value", `+chans)
	plain := netServer(t, port, "t", chans)
	recKeyed, recPlain := routertest.Record(t, keyed.Dial(t, "A"), ".*"), routertest.Record(t, plain.Dial(t, "A"), ".*")
	for _, c := range []*routertest.Server{keyed, plain} {
		if err := c.Dial(t, "A").Emit("hello", nil); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "the keyed server to drop unsealed datagrams", func() bool { return int(keyed.NetStats().Link.Unsealed) >= 2 })
	routertest.WaitFor(t, "the plain server to drop sealed datagrams", func() bool { return int(plain.NetStats().Link.Sealed) >= 2 })
	routertest.Fence(t, keyed, "A", recKeyed)
	routertest.Fence(t, plain, "A", recPlain)
	if recKeyed.Count("hello") != 1 || recPlain.Count("hello") != 1 {
		t.Errorf("heard %d and %d hellos, want only each server's own", recKeyed.Count("hello"), recPlain.Count("hello"))
	}
	if n := strings.Count(plain.Logs.String(), "this node has no key"); n != 1 {
		t.Errorf("the server without a key says so %d times:\n%s", n, plain.Logs)
	}
	if n := strings.Count(keyed.Logs.String(), "unsealed datagram dropped"); n != 1 {
		t.Errorf("the server with a key logs unsealed datagrams %d times:\n%s", n, keyed.Logs)
	}
	noSecretIn(t, map[string]string{"the log": keyed.Logs.String()}, "k3y-value")
}

// TestNetReloadKeyFile changes a key file's contents and reloads: the
// server reopens its link with the new key, so that it stops hearing the
// peer with the old key, and hears it again once that peer has the new
// key too.
func TestNetReloadKeyFile(t *testing.T) {
	port := mcasttest.Port()
	keyfile := writeKey(t, "first key", 0o600)
	members := fmt.Sprintf(`"keyfile": %q, "channels": {"A": {"propagatetonet": true}}`, keyfile)
	s1 := netServer(t, port, "t", `"key": "first key", "channels": {"A": {"propagatetonet": true}}`)
	s2 := netServer(t, port, "t", members)
	waitPeers(t, s1, s2)
	rec1 := routertest.Record(t, s1.Dial(t, "A"), ".*")
	a2 := s2.Dial(t, "A")
	if err := a2.Emit("before", nil); err != nil {
		t.Fatal(err)
	}
	rec1.WaitCount(t, "before", 1)

	if err := os.WriteFile(keyfile, []byte("second key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Reload(s2.ParseConfig(t, netMembers(port, "t", members))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s2.Logs.String(), "the key file changed") {
		t.Errorf("the reload does not say the key changed:\n%s", s2.Logs)
	}
	before := int(s1.NetStats().Link.Forged)
	if err := a2.Emit("during", nil); err != nil {
		t.Fatal(err)
	}
	routertest.WaitFor(t, "s1 to refuse s2's new key", func() bool { return int(s1.NetStats().Link.Forged) > before })
	if n := rec1.Count("during"); n != 0 {
		t.Errorf("s1 heard an event sealed with a key it did not have")
	}

	if _, err := s1.Reload(s1.ParseConfig(t, netMembers(port, "t", `"key": "second key", "channels": {"A": {"propagatetonet": true}}`))); err != nil {
		t.Fatal(err)
	}
	if err := a2.Emit("after", nil); err != nil {
		t.Fatal(err)
	}
	// "during" may or may not reach s1 now: if its datagram left s2
	// after s1's new link had joined, s1 opens it with the new key.
	rec1.WaitCount(t, "after", 1)
	// A reload that changes nothing keeps the link.
	joins := strings.Count(s2.Logs.String(), "joined the multicast group")
	if _, err := s2.Reload(s2.ParseConfig(t, netMembers(port, "t", members))); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s2.Logs.String(), "joined the multicast group"); n != joins {
		t.Errorf("a reload with the same key reopened the link")
	}
	noSecretIn(t, map[string]string{"s1's log": s1.Logs.String(), "s2's log": s2.Logs.String()}, "first key", "second key")
}

// TestKeyFile checks how a key file is found and read, with or without
// the network.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, contents string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(contents), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("plain", "secret", 0o600)
	write("newline", "secret\n", 0o600)
	write("crlf", "secret\r\n", 0o600)
	write("two newlines", "secret\n\n", 0o600)
	write("empty", "", 0o600)
	write("only a newline", "\n", 0o600)
	write("loose", "secret", 0o644)
	write("huge", strings.Repeat("k", 64<<10+1), 0o600)
	if err := os.Mkdir(filepath.Join(dir, "a directory"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		keyfile string
		want    string // the secret, or a part of the error
		err     bool
		warn    bool
	}{
		{"plain", "secret", false, false},
		{"newline", "secret", false, false},
		{"crlf", "secret", false, false},
		{"two newlines", "secret\n", false, false},
		{filepath.Join(dir, "plain"), "secret", false, false},
		{"loose", "secret", false, true},
		{"empty", filepath.Join(dir, "empty") + " is empty", true, false},
		{"only a newline", "is empty", true, false},
		{"missing", filepath.Join(dir, "missing") + ": no such file", true, false},
		{"huge", "is over 65536 bytes", true, false},
		{"a directory", "is not a regular file", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.keyfile, func(t *testing.T) {
			// The configuration file is in dir: a relative key file is
			// found beside it, wherever the server runs.
			cfgPath := filepath.Join(dir, "config.json")
			if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `{"keyfile": %q}`, tc.keyfile), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := router.LoadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			secret, err := cfg.Secret(slog.New(slog.NewTextHandler(&logs, nil)))
			switch {
			case tc.err && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %q, %v; want an error containing %q", secret, err, tc.want)
			case !tc.err && (err != nil || string(secret) != tc.want):
				t.Errorf("got %q, %v; want %q", secret, err, tc.want)
			}
			if warned := strings.Contains(logs.String(), "readable by others than its owner"); warned != (tc.warn && runtime.GOOS != "windows") {
				t.Errorf("warned %v, want %v: %s", warned, tc.warn, logs.String())
			}
			if strings.Contains(logs.String(), "secret") || (err != nil && strings.Contains(err.Error(), "secret")) {
				t.Errorf("the secret shows: %s %v", logs.String(), err)
			}
		})
	}

	t.Run("a server does not start on a bad key file", func(t *testing.T) {
		cfg := routertest.ShortTempDir(t)
		_, err := router.Start(mustParse(t, fmt.Sprintf(`{"socket": %q, "keyfile": %q}`, cfg+"/{channel}.sock", filepath.Join(dir, "missing"))),
			router.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing")) {
			t.Errorf("got %v, want an error naming the key file", err)
		}
	})
}

func mustParse(t *testing.T, text string) *router.Config {
	t.Helper()
	cfg, err := router.Parse("test.json", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestShowConfigNeverShowsKeyFileContents: showconfig names the key
// file, and nothing of what it holds.
func TestShowConfigNeverShowsKeyFileContents(t *testing.T) {
	keyfile := writeKey(t, "contents-of-the-key-file\n", 0o600)
	ts := routertest.NewServer(t, fmt.Sprintf(`"keyfile": %q`, keyfile))
	ctl := ts.Dial(t, router.ControlChannel)
	ans := routertest.Control(t, ctl, "showconfig", nil)
	text := fmt.Sprint(ans)
	if !strings.Contains(text, keyfile) {
		t.Errorf("showconfig does not name the key file: %s", text)
	}
	noSecretIn(t, map[string]string{"showconfig": text, "the log": ts.Logs.String()}, "contents-of-the-key-file")
}

// TestSealingTakesPayloadRoom: the payload that fits a maxframe unsealed
// may not once sealed, since the tag takes 16 bytes of each datagram.
func TestSealingTakesPayloadRoom(t *testing.T) {
	const members = `"payload": 1089, "maxframe": 67108864, "maxpending": 67108864`
	if _, err := router.Parse("test.json", []byte("{"+members+"}")); err != nil {
		t.Fatalf("unsealed: %v", err)
	}
	if _, err := router.Parse("test.json", []byte(`{"keyfile": "k", `+members+"}")); err == nil || !strings.Contains(err.Error(), "raise the payload") {
		t.Fatalf("sealed: %v, want a payload too small", err)
	}
}

// TestNetReplayedEventIsRefused captures a sealed datagram that carries
// an event, as an onlooker on the LAN could, and sends it again: the
// receiving server refuses it as a replay, and its clients hear the event
// once.
func TestNetReplayedEventIsRefused(t *testing.T) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	ifi, err := net.InterfaceByName(mcasttest.Interface)
	if err != nil {
		t.Skip(err)
	}
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 77, 77), Port: port}
	onlooker, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		t.Fatal(err)
	}
	defer onlooker.Close()
	chans := `"key": "replay-test-key", "channels": {"A": {"propagatetonet": true}}`
	s1 := netServer(t, port, "t", chans)
	s2 := netServer(t, port, "t", chans)
	waitPeers(t, s1, s2)
	rec2 := routertest.Record(t, s2.Dial(t, "A"), ".*")
	if err := s1.Dial(t, "A").Emit("once", "only once"); err != nil {
		t.Fatal(err)
	}
	rec2.WaitCount(t, "once", 1)
	// The onlooker heard the event's datagram, among heartbeats.
	var captured []byte
	buf := make([]byte, 65536)
	onlooker.SetReadDeadline(time.Now().Add(10 * time.Second))
	for captured == nil {
		n, _, err := onlooker.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("capturing: %v", err)
		}
		if buf[3] == byte(multicast.KindData) {
			captured = bytes.Clone(buf[:n])
		}
	}
	if bytes.Contains(captured, []byte("only once")) {
		t.Error("the event's data shows in the sealed datagram")
	}
	conn, err := net.DialUDP("udp4", nil, group)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 3 {
		if _, err := conn.Write(captured); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "s2 to refuse the replays", func() bool { return s2.NetStats().Link.Replayed == 3 })
	routertest.Fence(t, s2, "A", rec2)
	if n := rec2.Count("once"); n != 1 {
		t.Errorf("the event was heard %d times", n)
	}
}
