package routertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
)

// childEnv carries, to a test binary that StartChild runs again, the
// client it is to be.
const childEnv = "ROUTERTEST_CHILD_CLIENT"

type childSpec struct {
	Template, Channel, Name string
	Emits                   int
}

// Child is a client in a process of its own: the test binary run again,
// so that what the server learns of its peer (the pid of the socket's
// peer credentials, the pid of the hello) cannot be the test's own.
type Child struct {
	ID  uuid.UUID // the client's id on its connection
	PID int
}

// StartChild runs the test binary again as a client of channel, named
// name, that emits emits events "e" with data "x" and stays connected
// until the test ends. The test binary's TestMain must call ChildMain
// first.
func StartChild(t testing.TB, template, channel, name string, emits int) *Child {
	t.Helper()
	spec, err := json.Marshal(childSpec{Template: template, Channel: channel, Name: name, Emits: emits})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a child client: %v", err)
	}
	line, exited := make(chan string, 1), make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- s
		io.Copy(io.Discard, r) // until the child exits
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close() // the child's cue to close its client and exit
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child client: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("the child client did not exit")
		}
	})
	select {
	case s := <-line:
		id, err := uuid.Parse(strings.TrimSuffix(s, "\n"))
		if err != nil {
			t.Fatalf("the child client said %q, want its id: %v", s, err)
		}
		return &Child{ID: id, PID: cmd.Process.Pid}
	case <-time.After(20 * time.Second):
		t.Fatal("the child client never said its id")
		return nil
	}
}

// ChildMain makes a test binary that StartChild ran be the client it
// asked for: it dials, emits, writes its id on a line to stdout, stays
// connected until stdin ends, and exits. In any other run it returns at
// once. Call it first thing in TestMain.
func ChildMain() {
	v := os.Getenv(childEnv)
	if v == "" {
		return
	}
	if err := runChild(v); err != nil {
		fmt.Fprintln(os.Stderr, "child client:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(v string) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bus.Dial(ctx, spec.Channel, bus.SocketTemplate(spec.Template), bus.Name(spec.Name), bus.Reconnect(false))
	if err != nil {
		return err
	}
	defer c.Close()
	for range spec.Emits {
		if err := c.Emit("e", "x"); err != nil {
			return err
		}
	}
	if err := c.Flush(ctx); err != nil {
		return err
	}
	fmt.Println(c.ID())
	io.Copy(io.Discard, os.Stdin)
	return nil
}
