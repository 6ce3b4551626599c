package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestShowconfig: the human form names the file and prints the
// configuration as JSON that loads as a configuration file again, equal
// to the one the server runs, every key of which differs from its
// default (but connecttonet: these tests do not multicast); --json is
// the answer's map.
func TestShowconfig(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := routertest.NewServerIn(t, dir, `"addr": "239.255.1.2", "port": 4455, "dumpnet": true, "interface": "lo",
"ttl": 3, "cluster": "shown", "payload": 1300, "heartbeat": "300ms", "peertimeout": "3s",
"history": 4096, "gaptimeout": "700ms", "keyfile": `+strconv.Quote(keyFile)+`, "socketmode": "0600",
"maxframe": 4096, "maxpending": 65536, "metrics": "127.0.0.1:0", "pinginterval": "3s", "pingtimeout": "9s",
"channels": {"A": {"propagatetochannels": "B", "propagatetonet": true, "dumptoconsole": true, "acceptfromnet": false}, "B": {}}`)
	out := must(t, ts.Template, "showconfig")
	file, text, ok := strings.Cut(out, "\n")
	if !ok || file != "file: test.json" {
		t.Fatalf("showconfig said %q, want it to begin with the file", out)
	}
	cfg, err := router.Parse("test.json", []byte(text))
	if err != nil {
		t.Fatalf("the configuration shown does not load: %v\n%s", err, text)
	}
	if cfg.Socket != ts.Template || len(cfg.Channels) != 3 {
		t.Errorf("the configuration shown loads as socket %q, channels %v", cfg.Socket, cfg.ChannelNames())
	}
	if got, want := cfg.String(), ts.Config().String(); got != want {
		t.Errorf("the configuration shown loads as\n%s\nwant the running one\n%s", got, want)
	}

	var resp struct {
		File   string
		Config struct {
			Socket   string
			Channels map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(must(t, ts.Template, "showconfig", "--json")), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.File != "test.json" || resp.Config.Socket != ts.Template || resp.Config.Channels["A"]["propagatetochannels"] != "B" {
		t.Errorf("showconfig --json: %+v", resp)
	}
}

// TestChannels lists the channels as a table, and as JSON.
func TestChannels(t *testing.T) {
	ts := newServer(t)
	ts.Dial(t, "A")
	out := must(t, ts.Template, "channels")
	rows := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  NAME +CLIENTS +SOCKET +MODE +PROPAGATETOCHANNELS +TARGETS$`),
		regexp.MustCompile(`(?m)^  A +1 +` + regexp.QuoteMeta(ts.Path("A")) + ` +0660 +B +B$`),
		regexp.MustCompile(`(?m)^  B +0 +` + regexp.QuoteMeta(ts.Path("B")) + ` +0660 +false +\(none\)$`),
		regexp.MustCompile(`(?m)^  control +1 +` + regexp.QuoteMeta(ts.Path("control")) + ` +0600 `),
	}
	for _, re := range rows {
		if !re.MatchString(out) {
			t.Errorf("channels output does not match %v:\n%s", re, out)
		}
	}
	var resp struct{ Channels []struct{ Name string } }
	if err := json.Unmarshal([]byte(must(t, ts.Template, "--json", "channels")), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Channels) != 3 || resp.Channels[0].Name != "A" || resp.Channels[2].Name != "control" {
		t.Errorf("channels --json: %+v", resp)
	}
}

// TestShowchannel asks for a channel in both spellings, and for one of
// its clients by a prefix of its id.
func TestShowchannel(t *testing.T) {
	ts := newServer(t)
	// The client runs in a process of its own, so that the pid shown can
	// only be its, not the server's.
	c := routertest.StartChild(t, ts.Template, "A", "tester", 0)
	id := c.ID.String()
	for _, args := range [][]string{{"showchannel", "A"}, {`showchannel("A")`}, {"showchannel('A')"}} {
		out := must(t, ts.Template, args...)
		for _, want := range []string{"channel: A\n", "socket: " + ts.Path("A") + "\n", "targets: B\n", "clients:\n", id, " tester "} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: output does not contain %q:\n%s", args, want, out)
			}
		}
	}
	out := must(t, ts.Template, "showclient", "A", id[:8])
	for _, want := range []string{"id: " + id + "\n", "name: tester\n", "channel: A\n", fmt.Sprintf("\npid: %d\n", c.PID), fmt.Sprintf("hello_pid: %d\n", c.PID)} {
		if !strings.Contains(out, want) {
			t.Errorf("showclient: output does not contain %q:\n%s", want, out)
		}
	}
	if out := must(t, ts.Template, "showclient", id); !strings.Contains(out, "name: tester\n") {
		t.Errorf("showclient without a channel:\n%s", out)
	}
}

// TestCounters runs clientcount, stats and peers.
func TestCounters(t *testing.T) {
	ts := newServer(t)
	ts.Dial(t, "A")
	ts.Dial(t, "A")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"clientcount"}, []string{"total: 3\n", "  A: 2\n", "  B: 0\n", "  control: 1\n"}},
		{[]string{"clientcount", "A"}, []string{"total: 2\n", "  A: 2\n"}},
		{[]string{"stats"}, []string{"uptime: ", "reloads: 0\n", "  CHANNEL  CLIENTS", "\n  (total)  3 "}},
		{[]string{"peers"}, []string{"network: false\n", "peers: (none)\n"}},
	}
	for _, tt := range tests {
		out := must(t, ts.Template, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output does not contain %q:\n%s", tt.args, w, out)
			}
		}
	}
}

// TestLoglevel reads and sets the server's log level.
func TestLoglevel(t *testing.T) {
	ts := newServer(t)
	if out := must(t, ts.Template, "loglevel", "WARN"); out != "level: warn (was debug)\n" {
		t.Errorf("loglevel WARN said %q", out)
	}
	if out := must(t, ts.Template, "loglevel"); out != "level: warn\n" {
		t.Errorf("loglevel said %q", out)
	}
	r := ncclient(t, ts.Template, "", "loglevel", "loud")
	if r.code != exitFailed || !strings.Contains(r.stderr, `level "loud"`) {
		t.Errorf("loglevel loud: exit status %d, stderr %q", r.code, r.stderr)
	}
}

// TestReloadconfig reloads from a file named by a path relative to
// ncclient's directory, and reports a bad file's problems with their
// lines.
func TestReloadconfig(t *testing.T) {
	ts := newServer(t)
	dir := t.TempDir()
	good := `{"socket": "` + ts.Template + `", "channels": {"A": {"propagatetochannels": "B"}, "B": {}, "C": {}}}`
	os.WriteFile(filepath.Join(dir, "good.json"), []byte(good), 0o644)
	bad := "{\n  \"socket\": \"" + ts.Template + "\",\n  \"colour\": 1\n}\n"
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(bad), 0o644)

	cmd := clientCmd(t, ts.Template, "reloadconfig", "good.json")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reloadconfig good.json: %v", err)
	}
	for _, want := range []string{"file: " + filepath.Join(dir, "good.json") + "\n", "added: C\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("reloadconfig: output does not contain %q:\n%s", want, out)
		}
	}
	c := ts.Dial(t, "C") // the new channel serves
	c.Close()

	r := ncclient(t, ts.Template, "", "reloadconfig", filepath.Join(dir, "bad.json"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "bad.json:3:") || !strings.Contains(r.stderr, "colour") {
		t.Errorf("reloadconfig bad.json: exit status %d, stderr %q", r.code, r.stderr)
	}
	r = ncclient(t, ts.Template, "", "reloadconfig", filepath.Join(dir, "missing.json"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "missing.json") {
		t.Errorf("reloadconfig missing.json: exit status %d, stderr %q", r.code, r.stderr)
	}
	if _, ok := ts.Clients("C"); !ok {
		t.Error("a failed reload changed the channels")
	}
}

// TestShutdown stops the server.
func TestShutdown(t *testing.T) {
	ts := newServer(t)
	if out := must(t, ts.Template, "shutdown"); out != "the server is shutting down\n" {
		t.Errorf("shutdown said %q", out)
	}
	select {
	case <-ts.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
}

// TestRestart: restart reports that the server restarts, which a server
// started with a way to do so does (here it only counts); one without
// says it cannot, and ncclient exits 1.
func TestRestart(t *testing.T) {
	restarts := make(chan struct{}, 2)
	dir := routertest.ShortTempDir(t)
	ts := routertest.NewServerWith(t, dir, dir+"/{channel}.sock", testChannels, func(o *router.Options) {
		o.Restart = func() { restarts <- struct{}{} }
	})
	if out := must(t, ts.Template, "restart"); out != "the server is restarting\n" {
		t.Errorf("restart said %q", out)
	}
	select {
	case <-restarts:
	case <-time.After(10 * time.Second):
		t.Fatal("the server was not asked to restart")
	}

	r := ncclient(t, newServer(t).Template, "", "restart")
	if r.code != exitFailed || r.stdout != "" || !strings.Contains(r.stderr, "this server cannot restart itself") {
		t.Errorf("restart without a way to: exit status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestErrors: each failure has its exit status and a message on stderr,
// and nothing on stdout.
func TestErrors(t *testing.T) {
	ts := newServer(t)
	empty := filepath.Join(t.TempDir(), "{channel}.sock")
	tests := []struct {
		name     string
		template string
		args     []string
		code     int
		stderr   string
	}{
		{"no server, request", empty, []string{"showconfig"}, exitNoServer, "no server is running"},
		{"no server, emit", empty, []string{"emit", "A", "x"}, exitNoServer, "is ncserver running?"},
		{"no server, listen", empty, []string{"listen", "A"}, exitNoServer, "is ncserver running?"},
		{"unknown channel, emit", ts.Template, []string{"emit", "Z", "x"}, exitFailed, "channel Z does not exist; the server serves A, B, control"},
		{"unknown channel, listen", ts.Template, []string{"listen", "Z"}, exitFailed, "channel Z does not exist"},
		{"unknown channel, request", ts.Template, []string{"showchannel", "Z"}, exitFailed, `showchannel: no channel "Z"`},
		{"unknown client", ts.Template, []string{"showclient", "A", "abcdef"}, exitFailed, "no client abcdef"},
		{"bad JSON", ts.Template, []string{"emit", "A", "log", "{x}"}, exitFailed, "data is not JSON"},
		{"bad pattern", ts.Template, []string{"listen", "A", "("}, exitFailed, "missing closing )"},
		{"bad channel name", ts.Template, []string{"emit", "a/b", "x"}, exitFailed, "invalid channel name"},
		{"bad command", ts.Template, []string{"showconfg"}, exitUsage, `unknown command "showconfg"`},
		{"missing argument", ts.Template, []string{"showchannel"}, exitUsage, "usage: showchannel <channel>"},
		{"extra argument", ts.Template, []string{"stats", "x"}, exitUsage, "stats takes no arguments"},
		{"bad flag", ts.Template, []string{"--colour", "stats"}, exitUsage, "flag provided but not defined"},
		{"bad template", "/tmp/x.sock", []string{"stats"}, exitUsage, "must contain {channel}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ncclient(t, tt.template, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) || r.stdout != "" {
				t.Errorf("ncclient %q: exit status %d, stderr %q, stdout %q; want %d and %q", tt.args, r.code, r.stderr, r.stdout, tt.code, tt.stderr)
			}
		})
	}
}

// TestScript pipes commands in: each runs, a failure does not stop the
// rest, quit does, and the exit status is the last failure's.
func TestScript(t *testing.T) {
	ts := newServer(t)
	a := ts.Dial(t, "A")
	rec := routertest.Record(t, a, "n|fence-.*")
	script := "# a comment\nemit A n 1\n\nshowchanel A\nemit(\"A\", \"n\", 2)\nclientcount A\nquit\nemit A n 3\n"
	r := ncclient(t, ts.Template, script)
	if r.code != exitUsage {
		t.Errorf("exit status %d, want %d (the unknown command)", r.code, exitUsage)
	}
	if !strings.Contains(r.stderr, `unknown command "showchanel"`) {
		t.Errorf("stderr %q", r.stderr)
	}
	// The client a, and the connection of the emit before clientcount
	// while the server has yet to see it close: 1 or 2.
	if !regexp.MustCompile(`(?m)^total: [12]$`).MatchString(r.stdout) {
		t.Errorf("stdout %q lacks clientcount's answer", r.stdout)
	}
	routertest.Fence(t, ts, "A", rec)
	var got []int
	for _, m := range rec.Messages() {
		if m.Event != "n" {
			continue
		}
		var n int
		m.Decode(&n)
		got = append(got, n)
	}
	// Each emit is a connection of its own, and the server promises no
	// order between connections: compare what was heard, not its order.
	slices.Sort(got)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("A heard %v, want 1 and 2: the commands after quit must not run", got)
	}
}

// TestHelpColumns: help lists every command with its summary in one
// column; a synopsis too long for it puts the summary on the next line.
// (Before, the long synopses of record, replay and top ran into their
// summaries.)
func TestHelpColumns(t *testing.T) {
	ts := newServer(t)
	out := must(t, ts.Template, "help")
	for _, c := range commands {
		at := -1
		for _, line := range strings.Split(out, "\n") {
			if i := strings.Index(line, c.summary); i >= 0 {
				at = i
				break
			}
		}
		if at != 33 {
			t.Errorf("the summary of %s starts at column %d, want 33:\n%s", c.name, at, out)
		}
	}
}

// TestTablesWideNames: a client named in wide characters (日本語, two
// columns each on a terminal) keeps the columns of showchannel and of
// top -b aligned: the column after the names starts at one place on
// every row. (Before, the tables counted bytes or characters, and the
// rows after such a name were shifted.)
func TestTablesWideNames(t *testing.T) {
	ts := newServer(t)
	ts.Dial(t, "A", bus.Name("日本語"))
	ts.Dial(t, "A", bus.Name("abc"))
	for _, args := range [][]string{{"showchannel", "A"}, {"top", "-b", "-n", "1", "-d", "0.05", "A"}} {
		out := must(t, ts.Template, args...)
		var at []int
		for _, line := range strings.Split(out, "\n") {
			for _, name := range []string{"日本語", "abc"} {
				if i := strings.Index(line, name); i >= 0 {
					// The display column where the next field starts.
					rest := line[i+len(name):]
					next := len(rest) - len(strings.TrimLeft(rest, " "))
					at = append(at, ansi.StringWidth(line[:i+len(name)])+next)
				}
			}
		}
		if len(at) != 2 || at[0] != at[1] {
			t.Errorf("ncclient %q: the fields after the names start at columns %v:\n%s", args, at, out)
		}
	}
}
