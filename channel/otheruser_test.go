//go:build linux

package channel_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
)

// dialAsEnv carries, to a copy of the test binary run as another user,
// the socket it is to say hello to.
const dialAsEnv = "CHANNEL_TEST_DIAL_AS"

// dialAsMain makes a test binary run by dialAs say hello on the socket
// and print what the server answered: "welcome", or "error <code>".
func dialAsMain() {
	path := os.Getenv(dialAsEnv)
	if path == "" {
		return
	}
	nc, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(0)
	}
	nc.Write(wire.AppendHello(nil, &wire.Hello{Version: wire.ProtocolVersion, ClientID: uuid.New(), Name: "other-user"}))
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	frame, err := wire.NewFrameReader(bufio.NewReader(nc), 0).ReadFrame()
	switch t, _ := wire.TypeOf(frame[min(len(frame), wire.HeaderLen):]); {
	case err != nil:
		fmt.Println("read:", err)
	case t == wire.FrameWelcome:
		fmt.Println("welcome")
	case t == wire.FrameError:
		e, _ := wire.DecodeError(frame[wire.HeaderLen:])
		fmt.Println("error", int(e.Code))
	default:
		fmt.Println("frame", t)
	}
	os.Exit(0)
}

// binaryForAll copies the test binary where every user may run it, for
// the test's life, and returns the copy's path.
func binaryForAll(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ncbin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "channel.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// dialAs runs bin, a copy of the test binary, as uid and gid (which
// needs root), has it say hello to ch, and returns what it heard.
func dialAs(t *testing.T, bin string, ch *channel.Channel, uid, gid int) string {
	t.Helper()
	os.Chmod(filepath.Dir(ch.Path()), 0o755)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), dialAsEnv+"="+ch.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the client of uid %d: %v\n%s", uid, err, out)
	}
	return strings.TrimSpace(string(out))
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestOtherUser checks the access rules against a client that really
// runs as another user: the allow list tells it from this process by
// uid and by group, and maxclientsperuid counts each user apart.
func TestOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running a client as another user needs root")
	}
	bin := binaryForAll(t)
	me := strconv.Itoa(os.Getuid())
	other := strconv.Itoa(otherUID)
	for _, tc := range []struct {
		name     string
		access   channel.Access
		them, us string // what the other user hears, and whether this process gets in
	}{
		{"allow them by uid", channel.Access{Allow: principals(t, other)}, "welcome", "refused"},
		{"allow them by gid", channel.Access{Allow: principals(t, "group:"+other)}, "welcome", "refused"},
		{"allow us", channel.Access{Allow: principals(t, me)}, "error 9", "in"},
		{"publish is not allow", channel.Access{Publish: principals(t, me)}, "welcome", "in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := listen(t, channel.Config{Name: "A", Node: uuid.New(), Mode: 0o666, Access: tc.access})
			if got := dialAs(t, bin, ch, otherUID, otherUID); got != tc.them {
				t.Errorf("the client of uid %d heard %q, want %q", otherUID, got, tc.them)
			}
			_, err := dialErr(t, ch)
			if got := map[bool]string{true: "in", false: "refused"}[err == nil]; got != tc.us {
				t.Errorf("this process (uid %s): %v, want %s", me, err, tc.us)
			}
		})
	}
	t.Run("maxclientsperuid", func(t *testing.T) {
		ch := listen(t, channel.Config{Name: "A", Node: uuid.New(), Mode: 0o666, Access: channel.Access{MaxClientsPerUID: 1}})
		if _, err := dialErr(t, ch); err != nil {
			t.Fatal(err)
		}
		if got := dialAs(t, bin, ch, otherUID, otherUID); got != "welcome" {
			t.Errorf("the client of uid %d, whose first it is, heard %q", otherUID, got)
		}
		_, err := dialErr(t, ch)
		wantCode(t, "this process's second client", err, 10)
	})
}
