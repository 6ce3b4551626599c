package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netcluster/netcluster/router/routertest"
	"go.uber.org/goleak"
)

// raceBuild says whether the tests run with the race detector.
var raceBuild bool

// binary is ncclient, built once for the tests, which run it as a
// process against servers they start.
var binary string

func TestMain(m *testing.M) {
	// A test binary run again by routertest.StartChild is a client.
	routertest.ChildMain()
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker runs FuzzParseLine only, in-process.
		os.Exit(m.Run())
	}
	if inNetns() {
		os.Exit(runInNetns(m))
	}
	dir, err := os.MkdirTemp("", "ncclient-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ncclient")
	build := []string{"build", "-o", binary}
	if raceBuild {
		build = append(build, "-race")
	}
	out, err := exec.Command("go", append(build, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building ncclient: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// testChannels is the configuration of the tests' servers: A propagates
// to B.
const testChannels = `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`

// newServer starts a server on throwaway sockets.
func newServer(t *testing.T) *routertest.Server {
	t.Helper()
	return routertest.NewServer(t, testChannels)
}

// result is how an ncclient run ended.
type result struct {
	stdout, stderr string
	code           int
}

// clientCmd makes an ncclient process on the server's sockets (template
// "" leaves -socket out), keeping no history.
func clientCmd(t *testing.T, template string, args ...string) *exec.Cmd {
	t.Helper()
	full := []string{"-history", "", "-timeout", "5s"}
	if template != "" {
		full = append(full, "-socket", template)
	}
	cmd := exec.Command(binary, append(full, args...)...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	return cmd
}

// ncclient runs ncclient to the end, with stdin as its input.
func ncclient(t *testing.T, template, stdin string, args ...string) result {
	t.Helper()
	cmd := clientCmd(t, template, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ncclient %q: %v", args, err)
	}
	return r
}

// must runs ncclient and fails the test unless it exits 0.
func must(t *testing.T, template string, args ...string) string {
	t.Helper()
	r := ncclient(t, template, "", args...)
	if r.code != 0 {
		t.Fatalf("ncclient %q: exit status %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// running is an ncclient process whose output the test reads as it comes.
type running struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// start runs ncclient in the background.
func start(t *testing.T, template string, args ...string) *running {
	t.Helper()
	r := &running{cmd: clientCmd(t, template, args...), lines: make(chan string, 1000), done: make(chan struct{})}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.stderr.Write(p)
	})
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("ncclient %q stderr:\n%s", args, r.stderrText())
		}
	})
	return r
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (r *running) stderrText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

// line waits for the next line of output.
func (r *running) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			t.Fatalf("ncclient ended without more output; stderr:\n%s", r.stderrText())
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no output from ncclient within 10s")
		return ""
	}
}

// exit waits for the process to end and returns its exit status.
func (r *running) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("ncclient did not exit")
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return 0
}

// drain returns the rest of the output once the process has ended.
func (r *running) drain() string {
	var b strings.Builder
	for l := range r.lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// waitStderr waits until ncclient has said text on stderr.
func (r *running) waitStderr(t *testing.T, text string) {
	t.Helper()
	routertest.WaitFor(t, fmt.Sprintf("ncclient to say %q", text), func() bool {
		return strings.Contains(r.stderrText(), text)
	})
}
