// Package examples_test runs the Python and Node.js clients of examples/
// against a real server, with a Go client on the same channel, and checks
// what each heard from the other.
package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client is how to run one example.
type client struct {
	lang, interpreter, script string
}

var clients = []client{
	{"python", "python3", filepath.Join("python", "netcluster_client.py")},
	{"node", "node", filepath.Join("node", "netcluster-client.js")},
}

// start runs c's interpreter with args; it is killed when the test ends.
func start(t *testing.T, c client, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	bin, err := exec.LookPath(c.interpreter)
	if err != nil {
		t.Skipf("%s is not installed, so the %s example cannot run: %v", c.interpreter, c.lang, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stdout, &stderr
}

// heard parses the example's output: one JSON object per event.
func heard(t *testing.T, out string) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	for line := range strings.Lines(strings.TrimSpace(out)) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("example printed %q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// TestExamples has each example emit to a Go client and hear one back.
func TestExamples(t *testing.T) {
	for _, c := range clients {
		t.Run(c.lang, func(t *testing.T) {
			ts := routertest.NewServer(t, `"channels": {"A": {}}`)
			goClient := ts.Dial(t, "A", bus.Name("go"))
			rec := routertest.Record(t, goClient, "from-"+c.lang)
			cmd, stdout, stderr := start(t, c, c.script, "A", "--socket", ts.Path("A"),
				"--emit", "from-"+c.lang, "--data", `{"lang": "`+c.lang+`", "list": [1, 2.5, null, "é"]}`,
				"--count", "1", "--timeout", "20")
			rec.WaitCount(t, "from-"+c.lang, 1)
			var data struct {
				Lang string `msgpack:"lang"`
				List []any  `msgpack:"list"`
			}
			if err := rec.Messages()[0].Decode(&data); err != nil {
				t.Fatal(err)
			}
			if data.Lang != c.lang || len(data.List) != 4 || data.List[3] != "é" {
				t.Errorf("the Go client heard %+v", data)
			}
			if err := goClient.Emit("from-go", map[string]any{"text": "TESTE", "n": 42}); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%s example: %v\nstdout:\n%s\nstderr:\n%s", c.lang, err, stdout, stderr)
			}
			msgs := heard(t, stdout.String())
			if len(msgs) != 1 {
				t.Fatalf("the %s example heard %d events, want 1:\n%s", c.lang, len(msgs), stdout)
			}
			m := msgs[0]
			d, _ := m["data"].(map[string]any)
			if m["event"] != "from-go" || m["channel"] != "A" || m["emmiteruuid"] != goClient.ID().String() ||
				d["text"] != "TESTE" || d["n"] != 42.0 {
				t.Errorf("the %s example heard %v", c.lang, m)
			}
		})
	}
}

// TestExamplesListenOnly runs each example without --emit: it never sends
// a byte, and still hears what is emitted after it connected.
func TestExamplesListenOnly(t *testing.T) {
	for _, c := range clients {
		t.Run(c.lang, func(t *testing.T) {
			ts := routertest.NewServer(t, `"channels": {"A": {}}`)
			goClient := ts.Dial(t, "A", bus.Name("go"))
			cmd, stdout, stderr := start(t, c, c.script, "A", "--socket", ts.Path("A"), "--count", "2", "--timeout", "20")
			// Once the server has accepted the connection, what is emitted
			// reaches it, whether or not the grace is over.
			routertest.WaitFor(t, "the listener's connection", func() bool {
				st := ts.Channels()[0].Stats
				return st.Undecided+st.Clients == 2
			})
			goClient.Emit("one", 1)
			goClient.Emit("two", 2)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%s example: %v\nstdout:\n%s\nstderr:\n%s", c.lang, err, stdout, stderr)
			}
			msgs := heard(t, stdout.String())
			if len(msgs) != 2 || msgs[0]["event"] != "one" || msgs[1]["event"] != "two" || msgs[1]["data"] != 2.0 {
				t.Errorf("the %s example heard %v", c.lang, msgs)
			}
		})
	}
}

// TestExamplesEventNamedError has each example hear events named
// "error" and "close" like any other. The Node example emitted each
// event under its name on the emitter of its socket's own 'error' and
// 'close', so before the fix it took the bus event for a socket error
// and exited 1 (and, used as a library without an 'error' listener,
// threw; TestNodeExampleLibraryEventNamedError).
func TestExamplesEventNamedError(t *testing.T) {
	for _, c := range clients {
		t.Run(c.lang, func(t *testing.T) {
			ts := routertest.NewServer(t, `"channels": {"A": {}}`)
			goClient := ts.Dial(t, "A", bus.Name("go"))
			cmd, stdout, stderr := start(t, c, c.script, "A", "--socket", ts.Path("A"), "--count", "3", "--timeout", "20")
			routertest.WaitFor(t, "the listener's connection", func() bool {
				st := ts.Channels()[0].Stats
				return st.Undecided+st.Clients == 2
			})
			goClient.Emit("error", "just a name")
			goClient.Emit("close", "just a name")
			goClient.Emit("after", 3)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%s example: %v\nstdout:\n%s\nstderr:\n%s", c.lang, err, stdout, stderr)
			}
			msgs := heard(t, stdout.String())
			if len(msgs) != 3 || msgs[0]["event"] != "error" || msgs[1]["event"] != "close" || msgs[2]["event"] != "after" {
				t.Errorf("the %s example heard %v", c.lang, msgs)
			}
		})
	}
}

// TestNodeExampleLibraryEventNamedError uses the Node example's Client
// as a library, with no 'error' listener: an event named "error" reaches
// its 'event:error' listener, and the program goes on to the next
// event. Before the fix the client emitted it as 'error' on its own
// emitter, which throws without a listener: the program crashed.
func TestNodeExampleLibraryEventNamedError(t *testing.T) {
	c := clients[1] // the Node example
	script, err := filepath.Abs(c.script)
	if err != nil {
		t.Fatal(err)
	}
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	goClient := ts.Dial(t, "A", bus.Name("go"))
	code := `const { Client } = require(process.argv[1]);
const c = new Client(process.argv[2]);
c.on('event:error', (m) => console.log('error event: ' + m.data));
c.on('event:after', () => { console.log('after'); c.close(); });`
	cmd, stdout, stderr := start(t, c, "-e", code, script, ts.Path("A"))
	routertest.WaitFor(t, "the library's connection", func() bool {
		st := ts.Channels()[0].Stats
		return st.Undecided+st.Clients == 2
	})
	goClient.Emit("error", "just a name")
	goClient.Emit("after", 2)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if want := "error event: just a name\nafter\n"; stdout.String() != want {
		t.Errorf("printed %q, want %q", stdout, want)
	}
}

// TestClientDocPython runs the Python example of docs/client.md (the JSON
// text protocol, which the README links to), pointed at a test server's
// socket.
func TestClientDocPython(t *testing.T) {
	b, err := os.ReadFile("../docs/client.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?ms)^```python\n(.*?)^```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/client.md has no python block")
	}
	const placeholder = "/run/user/1000/netcluster/A.sock"
	if !bytes.Contains(m[1], []byte(placeholder)) {
		t.Fatalf("docs/client.md's python block does not connect to %s", placeholder)
	}
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	goClient := ts.Dial(t, "A", bus.Name("go"))
	rec := routertest.Record(t, goClient, "log")
	script := strings.ReplaceAll(string(m[1]), placeholder, ts.Path("A"))
	cmd, stdout, stderr := start(t, clients[0], "-c", script)
	rec.WaitCount(t, "log", 1)
	var text string
	if err := rec.Messages()[0].Decode(&text); err != nil || text != "TESTE" {
		t.Errorf("the Go client heard %q, %v", text, err)
	}
	goClient.Emit("reply", "hi")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docs/client.md example: %v\n%s", err, stderr)
	}
	if want := "reply " + goClient.ID().String() + " hi\n"; stdout.String() != want {
		t.Errorf("docs/client.md example printed %q, want %q", stdout, want)
	}
}
